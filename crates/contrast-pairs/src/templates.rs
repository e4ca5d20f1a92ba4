//! Caption templates for captions made from class names: one set to train on and a disjoint
//! set to evaluate zero-shot classification with, so that the evaluation prompts are not the
//! training captions. Written for this project in the style of CLIP's prompt ensembles.

/// Templates of the training captions (`{}` is the class name).
pub const TRAIN_TEMPLATES: [&str; 12] = [
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a low-resolution photo of a {}.",
    "a grayscale photo of a {}.",
    "a small photo of a {}.",
    "a close-up photo of a {}.",
    "a product photo of a {}.",
    "a blurry photo of the {}.",
    "a {} on a plain background.",
    "this is a {}.",
];

/// Templates of the evaluation prompts, disjoint from [`TRAIN_TEMPLATES`].
pub const EVAL_TEMPLATES: [&str; 6] = [
    "a low-resolution photo of the {}.",
    "a black and white picture of a {}.",
    "a catalogue image of a {}.",
    "a cropped photo of the {}.",
    "there is a {} in this picture.",
    "a good photo of a {}.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_sets_are_disjoint_and_every_template_has_a_slot() {
        for t in TRAIN_TEMPLATES.iter().chain(&EVAL_TEMPLATES) {
            assert_eq!(t.matches("{}").count(), 1, "{t}");
        }
        assert!(EVAL_TEMPLATES.iter().all(|t| !TRAIN_TEMPLATES.contains(t)));
    }
}
