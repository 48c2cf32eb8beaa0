"""Task ``unilm_seq2seq``: pseudo-mask fine-tuning and generation on binarized language pairs.

    fairseq-preprocess -s src -t tgt --joined-dictionary --trainpref ... --destdir data-bin
    fairseq-train data-bin --user-dir fairseq_unilmv2 --task unilm_seq2seq \\
        --arch unilm_v2_base --criterion unilm_seq2seq ...
    fairseq-generate data-bin --user-dir fairseq_unilmv2 --path checkpoint_best.pt --beam 5

Training batches hold the packed ``[source | target | pseudo]`` layout
(:mod:`fairseq_unilmv2.data.seq2seq_dataset`); generation feeds plain ``[bos] src [eos]``
sources to ``SequenceGenerator``, which runs ``model.encoder`` once and ``model.decoder``
incrementally.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import utils
from fairseq.data import Dictionary, data_utils
from fairseq.data.indexed_dataset import get_available_dataset_impl
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from ..data.checks import (DEFAULT_SOURCE_POSITIONS, DEFAULT_TARGET_POSITIONS,
                           check_parallel_data, fitted_positions)
from ..data.seq2seq_dataset import Seq2SeqDataset, Seq2SeqInferenceDataset
from ..generation import ExemptNGramRepeatBlock, S2SFtBeamSearch, parse_exempt_words

logger = logging.getLogger(__name__)


@dataclass
class UniLMSeq2SeqConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "directory of fairseq-preprocess output "
                      "(binarized language pairs with a joined dictionary)"})
    source_lang: Optional[str] = field(default=None, metadata={
        "help": "source language suffix (-s of fairseq-preprocess); inferred if omitted"})
    target_lang: Optional[str] = field(default=None, metadata={
        "help": "target language suffix (-t of fairseq-preprocess); inferred if omitted"})
    max_source_positions: Optional[int] = field(default=None, metadata={
        "help": f"source budget in tokens, [CLS] and [SEP] included; longer sources are "
                f"truncated (never dropped) [default: {DEFAULT_SOURCE_POSITIONS}, or what fits "
                f"the model's position table with the target budget]"})
    max_target_positions: Optional[int] = field(default=None, metadata={
        "help": f"target budget in tokens, the final [SEP] included; longer targets are "
                f"truncated in training [default: {DEFAULT_TARGET_POSITIONS}, or what a smaller "
                f"position table leaves]"})
    target_mask_prob: float = field(default=0.5, metadata={
        "help": "probability that a teacher-forced target token is replaced by its corrupted "
                "pseudo token (0.4-0.5 for XSum, 0.7-0.8 for CNN/DM)"})
    pseudo_mask_prob: float = field(default=0.8, metadata={
        "help": "probability that a pseudo token shows <mask>"})
    pseudo_random_prob: float = field(default=0.1, metadata={
        "help": "probability that a pseudo token shows a random token"})
    pseudo_keep_prob: float = field(default=0.1, metadata={
        "help": "probability that a pseudo token shows the original token"})
    s2s_ft_search: bool = field(default=False, metadata={
        "help": "decode with s2s-ft's beam search (decode_seq2seq.py): run --max-len-b frames "
                "(s2s-ft's --max_tgt_length; needs --max-len-a 0) and choose among the "
                "hypotheses finished at any frame and the unfinished at the last; --lenpen is "
                "the GNMT alpha of s2s-ft's --length_penalty (((5 + |y|) / 6) ** alpha, used "
                "when above 0); --no-repeat-ngram-size and --min-len cost -10000, not -inf"})
    no_repeat_ngram_exempt: Optional[str] = field(default=None, metadata={
        "help": "words that --no-repeat-ngram-size never blocks, nor lets block a word after "
                "them: dictionary symbols separated by '|' (s2s-ft's --forbid_ignore_word, "
                "e.g. '.'); with or without --s2s-ft-search"})
    seed: int = II("common.seed")
    train_subset: str = II("dataset.train_subset")
    dataset_impl: Optional[ChoiceEnum(get_available_dataset_impl())] = II("dataset.dataset_impl")


def check_probabilities(cfg: UniLMSeq2SeqConfig) -> None:
    probs = (cfg.pseudo_mask_prob, cfg.pseudo_random_prob, cfg.pseudo_keep_prob)
    if min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"--pseudo-mask-prob, --pseudo-random-prob and --pseudo-keep-prob are "
                         f"{probs}: they must be non-negative and sum to 1")
    if not 0.0 <= cfg.target_mask_prob <= 1.0:
        raise ValueError(f"--target-mask-prob {cfg.target_mask_prob} must be in [0, 1]")


@register_task("unilm_seq2seq", dataclass=UniLMSeq2SeqConfig)
class UniLMSeq2SeqTask(FairseqTask):
    cfg: UniLMSeq2SeqConfig

    def __init__(self, cfg: UniLMSeq2SeqConfig, dictionary: Dictionary):
        super().__init__(cfg)
        check_probabilities(cfg)
        # Budgets left unset are fitted to the model's position table in build_model; until
        # then (and for datasets built without a model) they hold the defaults.
        self.positions_given = (cfg.max_source_positions, cfg.max_target_positions)
        if cfg.max_source_positions is None:
            cfg.max_source_positions = DEFAULT_SOURCE_POSITIONS
        if cfg.max_target_positions is None:
            cfg.max_target_positions = DEFAULT_TARGET_POSITIONS
        self.dictionary = dictionary
        # The pseudo tokens' symbol, appended as masked_lm does.
        self.mask_idx = dictionary.add_symbol("<mask>")

    @classmethod
    def setup_task(cls, cfg: UniLMSeq2SeqConfig, **kwargs):
        paths = utils.split_paths(cfg.data)
        if not paths:
            raise ValueError("unilm_seq2seq needs the fairseq-preprocess output directory as data")
        if cfg.source_lang is None or cfg.target_lang is None:
            cfg.source_lang, cfg.target_lang = data_utils.infer_language_pair(paths[0])
        if cfg.source_lang is None or cfg.target_lang is None:
            raise ValueError(f"could not infer the language pair from the files in {paths[0]}: "
                             "pass --source-lang and --target-lang")
        src_dict = cls.load_dictionary(os.path.join(paths[0], f"dict.{cfg.source_lang}.txt"))
        tgt_dict = cls.load_dictionary(os.path.join(paths[0], f"dict.{cfg.target_lang}.txt"))
        if src_dict.symbols != tgt_dict.symbols:
            raise ValueError(f"dict.{cfg.source_lang}.txt and dict.{cfg.target_lang}.txt differ: "
                             "one embedding serves source and target, so binarize with "
                             "fairseq-preprocess --joined-dictionary")
        logger.info(f"joined dictionary: {len(src_dict)} types")
        return cls(cfg, src_dict)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        paths = utils.split_paths(self.cfg.data)
        data_path = paths[(epoch - 1) % len(paths)] if split == self.cfg.train_subset else paths[0]
        src_lang, tgt_lang = self.cfg.source_lang, self.cfg.target_lang
        prefix = os.path.join(data_path, f"{split}.{src_lang}-{tgt_lang}.")

        def load(lang: str):
            dataset = data_utils.load_indexed_dataset(prefix + lang, self.dictionary,
                                                      self.cfg.dataset_impl)
            if dataset is None:
                raise FileNotFoundError(f"no binarized {split} data at {prefix + lang}.{{bin,idx}}: "
                                        f"run fairseq-preprocess -s {src_lang} -t {tgt_lang}")
            return dataset

        src, tgt = load(src_lang), load(tgt_lang)
        check_parallel_data(prefix + src_lang, src.sizes, prefix + tgt_lang, tgt.sizes)
        self.datasets[split] = Seq2SeqDataset(
            split, src, tgt, self.dictionary, self.mask_idx, self.cfg, seed=self.cfg.seed,
            shuffle=split == self.cfg.train_subset)
        logger.info(f"{split}: {len(src)} pairs from {prefix}*")

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None, **kwargs):
        return Seq2SeqInferenceDataset(src_tokens, self.dictionary, self.cfg.max_source_positions,
                                       constraints=constraints)

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        self.fit_positions(model.max_positions())
        return model

    def fit_positions(self, table: int) -> None:
        """Set the source and target budgets for a model of ``table`` positions: the unset ones
        take their defaults or what fits (logged); budgets that cannot fit are an error that
        says which flag to set."""
        given_source, given_target = self.positions_given
        source, target = fitted_positions(table, given_source, given_target)
        if source + target > table or source < 3 or target < 2:
            example = fitted_positions(table)
            shown = [f"--max-source-positions {source}" + ("" if given_source else " (fitted)"),
                     f"--max-target-positions {target}" + ("" if given_target else " (fitted)")]
            raise ValueError(
                f"{shown[0]} + {shown[1]} = {source + target} do not fit the model's {table} "
                f"learned positions (source >= 3 and target >= 2 tokens): set "
                f"--max-source-positions and --max-target-positions to budgets that sum to at "
                f"most {table} (e.g. {example[0]} and {example[1]}), or extend the checkpoint's position table "
                f"(scripts/convert_checkpoint.py --max-positions)")
        if (source, target) != (self.cfg.max_source_positions, self.cfg.max_target_positions):
            logger.info(f"the model has {table} positions: --max-source-positions {source}, "
                        f"--max-target-positions {target} (set both flags to choose others)")
        self.cfg.max_source_positions, self.cfg.max_target_positions = source, target

    def generation_room(self, models) -> int:
        """Target tokens (final [SEP] included) that fit after the longest allowed source."""
        return min(m.max_decoder_positions() for m in models) - self.cfg.max_source_positions

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        room = self.generation_room(models)
        if getattr(args, "min_len", 1) > room - 1:
            raise ValueError(f"--min-len {args.min_len} exceeds the {room - 1} target tokens that "
                             f"fit after a source of --max-source-positions "
                             f"{self.cfg.max_source_positions}: lower --min-len or "
                             "--max-source-positions")
        exempt = parse_exempt_words(self._generation_option(args, "no_repeat_ngram_exempt"),
                                    self.dictionary)
        ngram_size = getattr(args, "no_repeat_ngram_size", 0)
        if exempt and ngram_size <= 0:
            logger.warning("--no-repeat-ngram-exempt has no effect without "
                           "--no-repeat-ngram-size N (s2s-ft's --forbid_duplicate_ngrams)")
        if self._generation_option(args, "s2s_ft_search") \
                and not getattr(args, "score_reference", False):
            return self._build_s2s_ft_search(models, args, room, exempt)
        # Cap generation so that no target position id goes past the position table.
        asked = int(getattr(args, "max_len_a", 0) * self.cfg.max_source_positions
                    + getattr(args, "max_len_b", 200))
        if asked > room - 1:
            logger.warning(f"generation asks for up to {asked} target tokens (--max-len-a/-b); "
                           f"it is capped at {room - 1} plus [SEP], the room left in the position "
                           f"table after --max-source-positions {self.cfg.max_source_positions}")
        extra_gen_cls_kwargs = dict(extra_gen_cls_kwargs or {})
        extra_gen_cls_kwargs.setdefault("max_len", room)
        generator = super().build_generator(models, args, seq_gen_cls=seq_gen_cls,
                                            extra_gen_cls_kwargs=extra_gen_cls_kwargs, **kwargs)
        if exempt and ngram_size > 0 and hasattr(generator, "repeat_ngram_blocker"):
            # fairseq's SequenceGenerator consults this module at every step.
            generator.repeat_ngram_blocker = ExemptNGramRepeatBlock(ngram_size, exempt)
        return generator

    def _generation_option(self, args, name: str):
        """A plugin decoding option: from the generation arguments when set there (the hub's
        ``sample(..., s2s_ft_search=True)``), else from the task's command-line flag."""
        value = getattr(args, name, None)
        return getattr(self.cfg, name) if value is None else value

    def _build_s2s_ft_search(self, models, args, room: int, exempt) -> S2SFtBeamSearch:
        if getattr(args, "max_len_a", 0) != 0:
            raise ValueError(f"--s2s-ft-search runs a fixed number of frames (s2s-ft's "
                             f"--max_tgt_length): give it as --max-len-b with --max-len-a 0, not "
                             f"--max-len-a {args.max_len_a}")
        for flag in ("sampling", "match_source_len", "print_alignment"):
            if getattr(args, flag, False):
                raise ValueError(f"--s2s-ft-search is s2s-ft's beam search and does not combine "
                                 f"with --{flag.replace('_', '-')}: drop one of them")
        frames = int(getattr(args, "max_len_b", 200))
        if frames < 1:
            raise ValueError(f"--max-len-b {frames}: --s2s-ft-search needs at least one frame "
                             "(s2s-ft's --max_tgt_length)")
        if frames > room:
            logger.warning(f"--max-len-b {frames} frames are capped at {room}, the room left in "
                           f"the position table after --max-source-positions "
                           f"{self.cfg.max_source_positions}")
            frames = room
        generator = S2SFtBeamSearch(
            models, self.dictionary, beam_size=getattr(args, "beam", 5), max_frames=frames,
            min_len=getattr(args, "min_len", 1), alpha=getattr(args, "lenpen", 1.0),
            no_repeat_ngram_size=getattr(args, "no_repeat_ngram_size", 0), exempt_words=exempt)
        logger.info(f"s2s-ft beam search: beam {generator.beam_size}, {frames} frames, GNMT "
                    f"alpha {generator.alpha}, min length {generator.min_len}, n-gram blocking "
                    f"{generator.no_repeat_ngram_size} ({len(exempt)} exempt words)")
        return generator

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        if "generation_input" in sample:
            # A training-style batch (fairseq-generate on a binarized split): generate from the
            # plain sources. The swap is in place because fairseq-generate prints the source
            # from sample["net_input"] after this call.
            sample["net_input"] = sample.pop("generation_input")
        with torch.no_grad():
            return generator.generate(models, sample, prefix_tokens=prefix_tokens,
                                      constraints=constraints)

    def max_positions(self):
        return (self.cfg.max_source_positions, self.cfg.max_target_positions)

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
