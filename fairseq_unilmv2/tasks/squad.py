"""Task ``squad``: extractive question answering (SQuAD v1.1 / v2.0) on the bidirectional encoder.

    fairseq-train DIR --user-dir fairseq_unilmv2 --task squad --criterion squad_span \\
        --wordpiece-vocab vocab.txt --arch unilm_v2_base ...      # or --spm-model spm.model
    python scripts/squad.py predict --path CKPT --data dev.json --out OUTDIR

DIR holds ``dict.txt`` (the checkpoint's dictionary; ``<mask>`` is appended as the other tasks
of the plugin do, so converted checkpoints fit) and ``train.json`` / ``valid.json`` in SQuAD
format (``--train-subset`` / ``--valid-subset`` name other files). The tokenizer comes from the
task's own flags, not from ``--bpe``: fairseq keeps ``--bpe`` options in ``cfg.bpe``, which
``setup_task`` never sees, and a task cannot declare them again (argparse conflict). Their
paths are stored absolute in the checkpoint, so that ``scripts/squad.py predict`` finds the
tokenizer from the checkpoint alone.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from ..convert.vocab import load_task_dictionary
from ..data.span_tokenizer import build_span_tokenizer
from ..data.squad_dataset import SquadDataset
from ..data.squad_examples import SquadExample, read_squad_examples
from ..data.squad_features import SquadWindower, SquadWindow, WindowCounts
from ..data.squad_postprocess import QuestionPrediction, predict_all

logger = logging.getLogger(__name__)
CASES = ChoiceEnum(["auto", "cased", "uncased"])


@dataclass
class SquadConfig(FairseqDataclass):
    data: str = field(default="", metadata={
        "help": "directory with dict.txt (the checkpoint's dictionary) and the splits as SQuAD "
                "JSON files named <split>.json (train.json, valid.json)"})
    wordpiece_vocab: Optional[str] = field(default=None, metadata={
        "help": "WordPiece vocab.txt to tokenize questions and contexts with (a converted "
                "checkpoint's vocabulary, scripts/convert_checkpoint.py)"})
    wordpiece_case: CASES = field(default="auto", metadata={
        "help": "lower-case for WordPiece: 'auto' follows the vocabulary (uncased when it has "
                "no upper-case piece), or 'cased' / 'uncased'"})
    spm_model: Optional[str] = field(default=None, metadata={
        "help": "sentencepiece model to tokenize questions and contexts with (a model "
                "pre-trained here on sentencepiece-encoded text)"})
    version_2_with_negative: bool = field(default=False, metadata={
        "help": "SQuAD v2.0: questions may have no answer (also on when a file's questions "
                "carry is_impossible); predictions weigh the null score"})
    max_seq_length: int = field(default=384, metadata={
        "help": "tokens of one window: [CLS] question [SEP] context [SEP]"})
    doc_stride: int = field(default=128, metadata={
        "help": "context pieces between the starts of consecutive windows of a long context"})
    max_query_length: int = field(default=64, metadata={
        "help": "question pieces kept (the first ones)"})
    n_best_size: int = field(default=20, metadata={
        "help": "start and end positions considered per window, and answers kept per question"})
    max_answer_length: int = field(default=30, metadata={
        "help": "longest predicted answer, in pieces"})
    null_score_diff_threshold: float = field(default=0.0, metadata={
        "help": "v2.0: predict no answer when the null score exceeds the best span's score by "
                "more than this"})
    seed: int = II("common.seed")


@register_task("squad", dataclass=SquadConfig)
class SquadTask(FairseqTask):
    cfg: SquadConfig

    def __init__(self, cfg: SquadConfig, dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.mask_idx = dictionary.index("<mask>")
        self._windower = None
        self.examples: Dict[str, List[SquadExample]] = {}
        self.version_2: Dict[str, bool] = {}

    @classmethod
    def setup_task(cls, cfg: SquadConfig, **kwargs):
        paths = utils.split_paths(cfg.data)
        if not paths:
            raise ValueError("--task squad needs a data directory holding dict.txt and "
                             "<split>.json files")
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.exists(dict_path):
            raise FileNotFoundError(f"{dict_path} not found: put the checkpoint's dict.txt (the "
                                    "one written by scripts/convert_checkpoint.py, or the "
                                    "pre-training data's) in the data directory")
        dictionary = load_task_dictionary(dict_path)
        # Absolute paths: the checkpoint's task config then locates the tokenizer by itself.
        for name in ("wordpiece_vocab", "spm_model"):
            if getattr(cfg, name):
                setattr(cfg, name, os.path.abspath(getattr(cfg, name)))
        task = cls(cfg, dictionary)
        task.windower  # fail now, not in the first batch, on a missing tokenizer
        logger.info(f"dictionary: {len(dictionary)} types; tokenizer "
                    f"{cfg.wordpiece_vocab or cfg.spm_model}")
        return task

    @property
    def windower(self) -> SquadWindower:
        if self._windower is None:
            cased = {"auto": None, "cased": True, "uncased": False}[str(self.cfg.wordpiece_case)]
            tokenizer = build_span_tokenizer(self.cfg.wordpiece_vocab, self.cfg.spm_model, cased)
            self._windower = SquadWindower(tokenizer, self.dictionary, self.cfg.max_seq_length,
                                           self.cfg.doc_stride, self.cfg.max_query_length)
        return self._windower

    def read_examples(self, path: str, articles=None):
        """Examples of a SQuAD file, its alignment problems logged; (examples, is v2.0)."""
        examples, version_2, report = read_squad_examples(path, articles)
        report.log(path)
        return examples, version_2 or self.cfg.version_2_with_negative

    def make_windows(self, examples: Sequence[SquadExample], name: str) -> List[SquadWindow]:
        counts = WindowCounts()
        windows = [w for i, example in enumerate(examples)
                   for w in self.windower.windows(example, i, counts)]
        counts.log(name)
        if counts.answer_not_on_pieces:
            logger.warning(f"{name}: {len(counts.answer_not_on_pieces)} answers cover no piece "
                           f"of the tokenized context (left out of training): "
                           f"{', '.join(counts.answer_not_on_pieces[:5])}")
        return windows

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        path = os.path.join(utils.split_paths(self.cfg.data)[0], f"{split}.json")
        examples, version_2 = self.read_examples(path)
        windows = self.make_windows(examples, path)
        labelled = [w for w in windows if w.start >= 0]
        if not labelled:
            raise ValueError(f"{path}: no window has a usable gold answer position, so there "
                             "is nothing to train or validate on: training needs answers with "
                             "answer_start (predict such a file with scripts/squad.py predict)")
        if len(labelled) < len(windows):
            logger.warning(f"{path}: {len(windows) - len(labelled)} windows of questions without "
                           "a usable gold position are left out of the loss")
        self.examples[split], self.version_2[split] = examples, version_2
        self.datasets[split] = SquadDataset(labelled, self.dictionary.pad(),
                                            shuffle=split == "train", seed=self.cfg.seed)
        logger.info(f"{split}: {len(examples)} questions ({'v2.0' if version_2 else 'v1.1'}), "
                    f"{len(labelled)} windows from {path}")

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if self.cfg.max_seq_length > model.max_positions():
            raise ValueError(f"--max-seq-length {self.cfg.max_seq_length} exceeds the model's "
                             f"{model.max_positions()} learned positions: lower it")
        model.register_span_head()
        return model

    @torch.no_grad()
    def window_logits(self, model, windows: Sequence[SquadWindow],
                      batch_size: int = 32) -> List[np.ndarray]:
        """(T, 2) start / end logits of every window, in order, from the model in eval mode."""
        dataset = SquadDataset(list(windows), self.dictionary.pad())
        device = next(model.parameters()).device
        out: List[Optional[np.ndarray]] = [None] * len(windows)
        order = dataset.ordered_indices()
        for first in range(0, len(order), batch_size):
            batch = dataset.collater([dataset[i] for i in order[first:first + batch_size]])
            net_input = utils.move_to_cuda(batch["net_input"], device) \
                if device.type == "cuda" else batch["net_input"]
            logits, _ = model(**net_input, span_head=True)
            logits = logits.float().cpu().numpy()
            for row, index in enumerate(batch["id"].tolist()):
                out[index] = logits[row, :len(windows[index].tokens)]
        return out

    def predict(self, model, examples: Sequence[SquadExample], version_2: bool,
                batch_size: int = 32, windows=None) -> Dict[str, QuestionPrediction]:
        """One prediction per question id (see :mod:`fairseq_unilmv2.data.squad_postprocess`)."""
        was_training = model.training
        model.eval()
        windows = windows if windows is not None else self.make_windows(examples, "predict")
        try:
            logits = self.window_logits(model, windows, batch_size)
        finally:
            model.train(was_training)
        return predict_all(examples, windows, logits, n_best_size=self.cfg.n_best_size,
                           max_answer_length=self.cfg.max_answer_length, version_2=version_2,
                           null_score_diff_threshold=self.cfg.null_score_diff_threshold)

    def max_positions(self):
        return self.cfg.max_seq_length

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
