"""Task ``pmlm``: UniLMv2 pre-training with the pseudo-masked language model (SPEC 3).

    fairseq-preprocess --only-source --trainpref train.txt --validpref valid.txt --destdir data-bin
    fairseq-train data-bin --user-dir fairseq_unilmv2 --task pmlm --criterion pmlm \\
        --arch unilm_v2_base ...
"""
import logging
import os
from dataclasses import dataclass, field

from fairseq import utils
from fairseq.data import Dictionary, TokenBlockDataset, data_utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.language_modeling import SAMPLE_BREAK_MODE_CHOICES
from omegaconf import II, MISSING

from ..data.checks import check_text_lines
from ..data.layout import OBJECTIVES, Objective
from ..data.pmlm_dataset import SPECIALS_PER_EXAMPLE, PMLMDataset

logger = logging.getLogger(__name__)


@dataclass
class PMLMConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={
        "help": "binarized monolingual data directory (fairseq-preprocess --only-source) with "
                "dict.txt; several directories separated by ':' are used in turn, one per epoch"})
    tokens_per_sample: int = field(default=512, metadata={
        "help": "length of the text [SOS] S1 [EOS] S2 [EOS] of one example, before the "
                "appended pseudo masks and originals; at most the model's --max-positions"})
    sample_break_mode: SAMPLE_BREAK_MODE_CHOICES = field(default="none", metadata={
        "help": "how text is cut into blocks (fairseq's TokenBlockDataset): 'none' fills every "
                "block with tokens-per-sample tokens across sentence and document ends, as "
                "masked_lm does; 'complete' ends blocks at sentence ends; 'complete_doc' also "
                "respects document boundaries (empty lines); 'eos' takes one sentence a block"})
    mask_prob: float = field(default=0.15, metadata={
        "help": "blockwise masking stops once at least this fraction of the text tokens "
                "(special tokens excluded) is masked"})
    span_prob: float = field(default=0.4, metadata={
        "help": "probability that a masking pick is an n-gram block rather than one token"})
    min_span_len: int = field(default=2, metadata={"help": "shortest n-gram block"})
    max_span_len: int = field(default=6, metadata={"help": "longest n-gram block"})
    random_token_prob: float = field(default=0.1, metadata={
        "help": "probability that a masked position shows a random token in the AE part"})
    leave_unmasked_prob: float = field(default=0.1, metadata={
        "help": "probability that a masked position shows its own token in the AE part"})
    objective: ChoiceEnum(OBJECTIVES) = field(default="ae+par", metadata={
        "help": "the pre-training objective (the paper's ablation): 'ae' conventional masks "
                "only, no pseudo part (masked_lm's input and cost); 'par' today's input, loss "
                "at the pseudo masks only, one factorization step a masked span; 'ar' as 'par' "
                "with every masked token its own step, in a random order; 'ae+ar', 'ae+par' "
                "both losses ('ae+par' is UniLMv2's PMLM); the criterion follows it"})
    append_last_originals: bool = field(default=True, metadata={
        "help": "append the original tokens of the last factorization step too; nothing "
                "attends to them, so leaving them out saves their compute: pass "
                "--append-last-originals to leave them out (fairseq makes a boolean option "
                "whose default is true a switch that sets it false)"})
    seed: int = II("common.seed")


@register_task("pmlm", dataclass=PMLMConfig)
class PMLMTask(FairseqTask):
    """Pseudo-masked LM pre-training on fairseq's binarized monolingual data."""

    cfg: PMLMConfig

    def __init__(self, cfg: PMLMConfig, dictionary: Dictionary):
        super().__init__(cfg)
        _check_config(cfg)
        self.dictionary = dictionary
        self.mask_idx = dictionary.add_symbol("<mask>")

    @classmethod
    def setup_task(cls, cfg: PMLMConfig, **kwargs):
        paths = utils.split_paths(cfg.data)
        if not paths:
            raise ValueError("--task pmlm needs a data directory (fairseq-preprocess --destdir)")
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.exists(dict_path):
            raise FileNotFoundError(f"{dict_path} not found: pass the --destdir of "
                                    "fairseq-preprocess --only-source as the data directory")
        dictionary = Dictionary.load(dict_path)
        logger.info(f"dictionary: {len(dictionary)} types")
        return cls(cfg, dictionary)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        paths = utils.split_paths(self.cfg.data)
        split_path = os.path.join(paths[(epoch - 1) % len(paths)], split)
        text = data_utils.load_indexed_dataset(split_path, self.dictionary, combine=combine)
        if text is None:
            raise FileNotFoundError(f"dataset not found: {split} ({split_path}); binarize it "
                                    "with fairseq-preprocess --only-source")
        check_text_lines(text.sizes, split_path, self.cfg.sample_break_mode,
                         block_tokens=self.cfg.tokens_per_sample - SPECIALS_PER_EXAMPLE,
                         tokens_per_sample=self.cfg.tokens_per_sample)
        blocks = TokenBlockDataset(text, text.sizes,
                                   self.cfg.tokens_per_sample - SPECIALS_PER_EXAMPLE,
                                   pad=self.dictionary.pad(), eos=self.dictionary.eos(),
                                   break_mode=self.cfg.sample_break_mode)
        logger.info(f"loaded {len(blocks)} blocks from: {split_path}")
        self.datasets[split] = PMLMDataset(
            blocks, blocks.sizes, self.dictionary, self.mask_idx, seed=self.cfg.seed,
            mask_prob=self.cfg.mask_prob, span_prob=self.cfg.span_prob,
            min_span_len=self.cfg.min_span_len, max_span_len=self.cfg.max_span_len,
            random_token_prob=self.cfg.random_token_prob,
            leave_unmasked_prob=self.cfg.leave_unmasked_prob,
            append_last_originals=self.cfg.append_last_originals,
            objective=self.cfg.objective)

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        model_positions = model.max_positions()
        if isinstance(model_positions, int) and self.cfg.tokens_per_sample > model_positions:
            raise ValueError(f"--tokens-per-sample {self.cfg.tokens_per_sample} exceeds the "
                             f"model's --max-positions {model_positions}: lower the first or "
                             "raise the second")
        return model

    @property
    def objective(self) -> Objective:
        """Which parts the examples have; the pmlm criterion reads its losses from it."""
        return Objective.parse(self.cfg.objective)

    def max_positions(self):
        return self.cfg.tokens_per_sample

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary


def _check_config(cfg: PMLMConfig) -> None:
    """Reject settings that cannot mask, naming the flag and the range it needs."""
    Objective.parse(cfg.objective)
    if cfg.tokens_per_sample <= SPECIALS_PER_EXAMPLE:
        raise ValueError(f"--tokens-per-sample {cfg.tokens_per_sample} leaves no room for text "
                         f"besides [SOS] S1 [EOS] S2 [EOS]: use at least 4")
    if not 0.0 < cfg.mask_prob < 1.0:
        raise ValueError(f"--mask-prob {cfg.mask_prob} must be in (0, 1)")
    if not 0.0 <= cfg.span_prob <= 1.0:
        raise ValueError(f"--span-prob {cfg.span_prob} must be in [0, 1]")
    if not 1 <= cfg.min_span_len <= cfg.max_span_len:
        raise ValueError(f"need 1 <= --min-span-len ({cfg.min_span_len}) <= --max-span-len "
                         f"({cfg.max_span_len})")
    corrupt = cfg.random_token_prob + cfg.leave_unmasked_prob
    if min(cfg.random_token_prob, cfg.leave_unmasked_prob) < 0 or corrupt > 1:
        raise ValueError(f"--random-token-prob ({cfg.random_token_prob}) and "
                         f"--leave-unmasked-prob ({cfg.leave_unmasked_prob}) must be >= 0 and "
                         "sum to at most 1")
