"""A deterministic, offline sentence-classification task that a model can only solve on its test split by using
what it learned in pretraining.

Each example is one English sentence evaluating something neutral, labelled 0 = negative or 1 = positive (balanced
in every split). A *plain* sentence has one or two sentiment words of its label ("my sister said the concert was
really {word}"). A *contrastive* sentence (a fraction ``contrast`` of them) has one word of each polarity and a
verdict that overrides a first impression: "i thought the meal would be {other} but it was {word}", "the film was
{word} even though the critic had called it {other}"; its label is the verdict's. Which word is the verdict is
told by the template (learnable from the training split); whether that word is positive or negative is not. Every
other word -- templates, nouns, speakers, adverbs, time phrases -- is shared by both labels and by the train,
validation and test splits (the out-of-distribution split below has templates and nouns of its own) and drawn
independently of the label. There is no negation, so a word's polarity never flips.

The contrastive sentences are there because plain held-out sentiment is solved by the pretrained features as they
are: a linear classifier on frozen all-MiniLM-L6-v2 features already scores ~1.0 on the plain test sentences, so
thawing more of the encoder could not show. With both polarities in a sentence, the word-polarity knowledge from
pretraining has to be combined with a rule learnt from the training split, which the frozen features do not
encode (a linear probe on them drops to 0.7-0.78 at ``contrast=0.5``) but fine-tuning the encoder learns (~1.0):
how much of the encoder a schedule thaws, and when, shows in the test accuracy.

Why it measures transfer: the sentiment words are split into three disjoint vocabularies, one per split
(:data:`LABEL_WORDS`). The test sentences' sentiment words never occur in a training sentence, so whatever the
classifier learns from the few hundred labelled examples is about *other* words. A model without pretraining has
never seen a test sentiment word in any labelled context: its embedding is a random vector that carries no label
information, and it scores near chance on test however well it fits train. A pretrained encoder has already placed
"amazing" near "excellent" and "horrible" near "awful", so what it learns about the training words carries over.
The validation words are a third set, so early stopping and checkpoint selection on ``val_loss`` also reward
transfer rather than memorizing the training words. The word lists were dealt from one list per polarity ordered
by roughly how common the words are (train, validation, train, test, ...), so the three splits are about equally
hard; every word is a single wordpiece in the BERT uncased vocabulary (all-MiniLM-L6-v2 included), so no split
differs from another in length or tokenization.

The out-of-distribution test split (``test_ood``, ``n_test_ood`` sentences) adds a second shift on top of the held-out
words. The test split differs from training in its sentiment words only: its templates, nouns, speakers and filler
are drawn from the training distribution. ``test_ood`` keeps the test split's held-out sentiment words and replaces
the sentence frames: its templates (:data:`OOD_TEMPLATES`, :data:`OOD_CONTRAST_TEMPLATES`) could have produced no
training, validation or test sentence, and its topic nouns (:data:`OOD_NOUNS`: food, things at home and places in
town, where the other splits talk about shows, trips, gadgets and classes) occur in none. The new frames bring new
verbs and phrasing ("in my opinion the {noun} is", "far from being ... the {noun} was"), and the contrastive ones
signal the verdict with connectives no training sentence has ("yet", "despite", "in spite of", "far from") instead
of "but", "although" and "even though". Everything else is as in the test split: the speakers, adverbs and time
phrases, the fraction ``contrast`` of contrastive sentences, balanced labels, one random stream of its own from the
data seed.

Why it measures distribution shift: the two test splits share their sentiment words, so the word-level transfer
both need is the same, and they differ only in the frames and topics. test_ood accuracy below test accuracy is
what a model lost because what it learnt from the training sentences is tied to their surface (the templates the
verdict rule was learnt on, the topics the words were seen with) rather than to sentiment and the meaning of the
contrast; a model whose pretraining carries "yet" and "despite" as it carries "but" would lose nothing. Held-out words
of a fourth set would have mixed that gap with how hard the new words are, and the training words would have taken
away the word-level transfer the task measures. The split was designed, and its properties tested, before any
experiment was run on it; it is not to be changed after seeing results.

The word-level tokenizer (over :meth:`HeldOutSentiment.vocabulary`, for models trained from scratch) knows the
words of all the splits, test_ood's included: a test word gets its own (untrained) embedding instead of
``[UNK]``. Mapping unseen words to ``[UNK]`` would erase them from the input and handicap the from-scratch baseline
by construction; with their own ids the baseline sees exactly the same sentences as the pretrained model and fails
only for lack of prior knowledge.

Example::

    task = HeldOutSentiment(n_train=8, n_validation=4, n_test=4, n_test_ood=4, seed=0)
    task.split("test")[0]
    # SentenceExample(sentence='a colleague expected the trip to be weak but it was simply exciting', label=1)
    task.split("test_ood")[0]
    # SentenceExample(sentence='my first impression of the pizza was nasty', label=0)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from ftexp.data.generated import OOD_TEST_SPLIT, SPECIAL_TOKENS, SPLITS, GeneratedSplits

LABEL_NAMES = ("negative", "positive")
NEGATIVE, POSITIVE = 0, 1
# {split: {label: sentiment words}}: pairwise disjoint across splits, 24/12/12 words per polarity
LABEL_WORDS: dict[str, dict[int, tuple[str, ...]]] = {
    "train": {
        POSITIVE: (
            "good", "nice", "perfect", "excellent", "lovely", "brilliant", "pleasant", "impressive",
            "remarkable", "enjoyable", "superb", "gorgeous", "stunning", "exceptional", "splendid", "memorable",
            "satisfying", "glorious", "exquisite", "refreshing", "delicious", "cheerful", "dazzling", "sublime",
        ),
        NEGATIVE: (
            "bad", "awful", "poor", "ugly", "annoying", "dull", "disgusting", "useless",
            "miserable", "dreadful", "painful", "lame", "irritating", "unbearable", "sloppy", "rotten",
            "awkward", "messy", "stale", "foul", "dumb", "faulty", "inadequate", "dirty",
        ),
    },
    "validation": {
        POSITIVE: (
            "great", "wonderful", "fantastic", "incredible", "outstanding", "terrific",
            "fabulous", "magnificent", "entertaining", "flawless", "comfortable", "stellar",
        ),
        NEGATIVE: (
            "terrible", "boring", "disappointing", "pathetic", "unpleasant", "rude",
            "hideous", "filthy", "clumsy", "vile", "flawed", "uncomfortable",
        ),
    },
    "test": {
        POSITIVE: (
            "beautiful", "amazing", "awesome", "exciting", "delightful", "charming",
            "elegant", "spectacular", "marvelous", "thrilling", "inspiring", "ideal",
        ),
        NEGATIVE: (
            "horrible", "stupid", "nasty", "ridiculous", "frustrating", "worthless",
            "inferior", "bland", "gross", "offensive", "defective", "weak",
        ),
    },
}  # fmt: skip
# {word} and {word2} are sentiment words of the sentence's label; the rest is neutral filler
TEMPLATES = (
    "the {noun} was {adverb}{word}",
    "the {noun} is {adverb}{word}",
    "{speaker} said the {noun} was {adverb}{word}",
    "{speaker} thought the {noun} was {adverb}{word}",
    "{speaker} described the {noun} as {adverb}{word}",
    "i found the {noun} {adverb}{word}",
    "we all agreed that the {noun} was {adverb}{word}",
    "the {noun} turned out {adverb}{word}",
    "the whole {noun} seemed {adverb}{word}",
    "everything about the {noun} was {adverb}{word}",
    "i still remember how {word} the {noun} was",
    "the {noun} was {adverb}{word} and the {noun2} was {word2}",
    "{speaker} found the {noun} {word} and {adverb}{word2}",
)
# contrastive templates: {word} (the label's polarity) is the verdict, {other} (the opposite polarity) is not
CONTRAST_TEMPLATES = (
    "i thought the {noun} would be {other} but it was {adverb}{word}",
    "{speaker} expected the {noun} to be {other} but it was {adverb}{word}",
    "the {noun} seemed {other} at first but it turned out {adverb}{word}",
    "everyone said the {noun} was {other} but i found it {adverb}{word}",
    "the {noun} was {adverb}{word} even though {speaker} had called it {other}",
    "the {noun} turned out {adverb}{word} although it looked {other}",
)
NOUNS = (
    "movie", "book", "meal", "dinner", "hotel", "room", "trip", "show", "concert", "game", "song", "album",
    "phone", "car", "class", "lecture", "party", "restaurant", "service", "coffee", "play", "museum", "garden",
    "flight", "story", "camera", "course", "match", "performance", "festival", "interview", "apartment",
)  # fmt: skip
SPEAKERS = (
    "my friend", "my sister", "my brother", "the critic", "our neighbor", "the teacher", "my boss", "everyone",
    "the manager", "a colleague", "the guide", "our host",
)  # fmt: skip
ADVERBS = ("really", "very", "quite", "truly", "rather", "so", "simply", "just")
TIMES = ("yesterday", "last week", "on sunday", "this morning", "in the end", "recently", "overall", "today")
# The out-of-distribution test split's frames (see the module docstring): no sentence of another split matches one
# of these templates, and no sentence of test_ood matches a template above; its nouns occur in no other split
OOD_TEMPLATES = (
    "in my opinion the {noun} is {adverb}{word}",
    "if you ask me the {noun} is {adverb}{word}",
    "to be honest the {noun} looked {adverb}{word}",
    "my first impression of the {noun} was {adverb}{word}",
    "{speaker} told me that the {noun} felt {adverb}{word}",
    "{speaker} keeps telling people how {word} the {noun} is",
    "for me the {noun} was {adverb}{word} from start to finish",
    "both the {noun} and the {noun2} were {adverb}{word}",
    "the {noun} looked {word} and felt {adverb}{word2}",
    "{speaker} noticed that the {noun} was {word} and {adverb}{word2}",
)
# the verdict is {word} as above, but told by connectives no training template has (yet, far from, despite, in spite of)
OOD_CONTRAST_TEMPLATES = (
    "the {noun} was supposed to be {other} yet it proved {adverb}{word}",
    "the {noun} looked {other} on paper yet in practice it was {adverb}{word}",
    "far from being {other} the {noun} was {adverb}{word}",
    "despite looking {other} the {noun} was {adverb}{word}",
    "the {noun} ended up {adverb}{word} despite {speaker} calling it {other}",
    "the {noun} proved {adverb}{word} in spite of looking {other}",
)
OOD_NOUNS = (
    "pizza", "soup", "salad", "sandwich", "cake", "bread", "cheese", "wine",
    "sofa", "lamp", "mattress", "blanket", "umbrella", "backpack", "jacket", "laptop", "printer", "keyboard",
    "beach", "lake", "village", "bakery", "stadium", "library",
)  # fmt: skip


@dataclass(frozen=True)
class SentenceExample:
    sentence: str
    label: int


@dataclass(frozen=True)
class SentenceFrames:
    """What a split's sentences are built around: templates (plain and contrastive) and topic nouns."""

    templates: tuple[str, ...]
    contrast_templates: tuple[str, ...]
    nouns: tuple[str, ...]


IN_DISTRIBUTION = SentenceFrames(TEMPLATES, CONTRAST_TEMPLATES, NOUNS)  # train, validation and test
OUT_OF_DISTRIBUTION = SentenceFrames(OOD_TEMPLATES, OOD_CONTRAST_TEMPLATES, OOD_NOUNS)  # test_ood


@dataclass(frozen=True)
class HeldOutSentiment(GeneratedSplits):
    """Split sizes and the data seed (:meth:`~ftexp.data.generated.GeneratedSplits.split` gives the examples). The
    sentiment words of each split are fixed (:data:`LABEL_WORDS`), and so are the frames of the out-of-distribution
    split ``test_ood`` (:data:`OUT_OF_DISTRIBUTION`): the seed changes the sentences, never which words are held
    out."""

    task: ClassVar[str] = "transfer task"
    seed_prefix: ClassVar[str] = "ftexp-held-out-sentiment"
    splits: ClassVar[tuple[str, ...]] = (*SPLITS, OOD_TEST_SPLIT)
    n_train: int = 256
    n_validation: int = 128
    n_test: int = 512
    seed: int = 0
    contrast: float = 0.5  # the fraction of contrastive sentences (0: plain held-out sentiment)
    n_test_ood: int = 512  # the out-of-distribution test split: the test split's words in new frames

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.contrast, bool) or not isinstance(self.contrast, int | float) or not 0 <= self.contrast <= 1:
            raise ValueError(f"transfer task: contrast must be a fraction between 0 and 1, got {self.contrast!r}")

    def example(self, rng: random.Random, split: str, label: int) -> SentenceExample:
        """The split decides the sentiment words (its own, held out from the others; test_ood: the test split's)
        and the frames (test_ood: its own; the other splits share theirs)."""
        if split == OOD_TEST_SPLIT:
            return make_example(rng, LABEL_WORDS["test"], label, self.contrast, OUT_OF_DISTRIBUTION)
        return make_example(rng, LABEL_WORDS[split], label, self.contrast, IN_DISTRIBUTION)

    @classmethod
    def vocabulary(cls) -> list[str]:
        """The words of all the splits, test sentiment words included: see the module docstring for why. The words
        only test_ood has come last, so every other word keeps the id it had before that split existed."""
        filler = " ".join((*TEMPLATES, *CONTRAST_TEMPLATES, *NOUNS, *SPEAKERS, *ADVERBS, *TIMES)).split()
        neutral = sorted({word for word in filler if not word.startswith("{")})
        sentiment = [word for split in SPLITS for label in (NEGATIVE, POSITIVE) for word in LABEL_WORDS[split][label]]
        ood_filler = " ".join((*OOD_TEMPLATES, *OOD_CONTRAST_TEMPLATES, *OOD_NOUNS)).split()
        ood_only = sorted({word for word in ood_filler if not word.startswith("{")} - {*neutral, *sentiment})
        return [*SPECIAL_TOKENS, *neutral, *sentiment, *ood_only]


def make_example(
    rng: random.Random, words: dict[int, tuple[str, ...]], label: int, contrast: float, frames: SentenceFrames
) -> SentenceExample:
    """A plain sentence with one or two sentiment words of ``label``, or (with probability ``contrast``) a
    contrastive one whose verdict has the polarity of ``label``, in a random template of ``frames`` with one of
    its nouns, neutral filler and, sometimes, a time phrase in front. ``words`` are the sentiment words of one
    split, by label."""
    first, second = rng.sample(words[label], 2)
    other = rng.choice(words[1 - label])
    noun, noun2 = rng.sample(frames.nouns, 2)
    adverb = f"{rng.choice(ADVERBS)} " if rng.random() < 0.5 else ""
    templates = frames.contrast_templates if rng.random() < contrast else frames.templates
    sentence = rng.choice(templates).format(
        noun=noun, noun2=noun2, speaker=rng.choice(SPEAKERS), adverb=adverb, word=first, word2=second, other=other
    )
    if rng.random() < 0.3:
        sentence = f"{rng.choice(TIMES)} {sentence}"
    return SentenceExample(sentence, label)
