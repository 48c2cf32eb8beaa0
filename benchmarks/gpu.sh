#!/usr/bin/env bash
# UniLMv2 on a GPU, in one run: the training step of each attention backend against its bound,
# fairseq-train pmlm against fairseq's own masked_lm, and beam-5 decoding. Prints each stage and
# ends with one JSON line.
#
#   bash benchmarks/gpu.sh              # on a GPU: base size (12 x 768), batch 32 x 512 tokens
#   bash benchmarks/gpu.sh --dry-run    # anywhere: tiny sizes on the CPU, checks the script
#
# 0. The CUDA tests: flex against dense in logits and every gradient, a step free of host
#    syncs, the relative-position gradient (pytest must be importable: if the host lacks it,
#    `pip download --no-deps -d .gpu-bundle/whl pytest pluggy iniconfig` before sending).
# 1. benchmarks/gpu_step.py: one PMLM pre-training step (32 texts of 512 tokens) and one seq2seq
#    fine-tuning step (464 + 48 tokens), forward + backward under bf16 autocast + fused AdamW,
#    with --attention-backend dense and flex and with attention given no mask at all (the
#    bound): step time, text tokens/s, bf16 MFU, ratio to the bound, host syncs in a step.
# 2. fairseq-train, same data, batch and precision: masked_lm + roberta_base against
#    pmlm + unilm_v2_base (dense; and flex, with --attention-dropout 0 since FlexAttention has no
#    attention dropout), in --fp16 and --bf16; updates/s are the median of the log intervals
#    after the first two (warm-up), and each pmlm run's ratio to masked_lm is reported.
# 3. benchmarks/decode.py: beam-5 decoding against fairseq's transformer of the same depth,
#    sources of 463 tokens + 48 generated (the 512 positions hold source + target + 1 mask).
#
# Data for stage 2: TEXT (plain text, one paragraph a line), else WikiText-2's valid.txt and
# test.txt together from ../shared/data/wikitext2/ or from .gpu-data/ (copy them there before
# sending the checkout to a GPU host: ../shared does not travel), else random words. Both
# files give 28 batches of 32 x 512 an epoch, so that most log intervals hold no epoch start
# (valid.txt alone gives 13). Environment: PYTHON (default
# .venv/bin/python, else python3), STEPS (timed steps a mode, default 20), UPDATES (fairseq-train
# updates a run, default 80), PRECISIONS (default "fp16 bf16"), STAGES (which of 0-3 to run,
# default "0 1 2 3").
#
# Device time, estimated without a GPU (compilation dominates the flex runs): stages 0 + 1
# about 4 min, stage 2 about 5 min (six fairseq-train runs), stage 3 about 1 min. A session's
# device time is short and one command may run 10 min: run STAGES="0 1" and then STAGES="2 3"
# back to back on the warm machine; the stage headers print the elapsed seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
cd "$ROOT"
# Under the device tool, $OUT comes back even when the command runs past its limit: keep the log
# there as it is written, so that the stages that finished are not lost.
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    exec > >(tee "$OUT/gpu.log") 2>&1
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ "$DRY" = 1 ]; then
    STEP_ARGS=(--device cpu --layers 2 --dim 64 --heads 4 --vocab 1000 --batch 2 --tps 64
               --source-len 48 --target-len 8 --steps "${STEPS:-2}" --modes dense nomask)
    SIZE=(--encoder-layers 2 --encoder-embed-dim 64 --encoder-ffn-embed-dim 128
          --encoder-attention-heads 4)
    TRAIN=(--cpu --tokens-per-sample 64 --batch-size 2 --max-update "${UPDATES:-6}"
           --log-interval 2 --num-workers 0)
    PRECISIONS="${PRECISIONS:-fp32}"; PMLM_BACKENDS="dense"
    DECODE=(--device cpu --layers 2 --dim 64 --heads 4 --vocab 1000 --sentences 4
            --batch-size 4 --source-len 32 --target-len 8 --runs 1)
else
    STEP_ARGS=(--device cuda --steps "${STEPS:-20}")
    SIZE=()
    TRAIN=(--tokens-per-sample 512 --batch-size 32 --max-update "${UPDATES:-80}"
           --log-interval 10 --num-workers 2)
    PRECISIONS="${PRECISIONS:-fp16 bf16}"; PMLM_BACKENDS="dense flex"
    DECODE=(--device cuda --layers 12 --dim 768 --heads 12 --vocab 30522 --sentences 256
            --batch-size 64 --source-len 463 --target-len 48 --runs 3)
fi

STAGES="${STAGES:-0 1 2 3}"
stage() { [[ " $STAGES " == *" $1 "* ]]; }
"$PYTHON" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"

TESTS_OK=null STEP_JSON=null TRAIN_JSON=null DECODE_JSON=null
if stage 0; then
echo "== 0. CUDA tests (at ${SECONDS} s)"
if [ "$DRY" = 0 ]; then
    if "$PYTHON" -c "import pytest" 2>/dev/null; then
        if "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_flex_attention.py \
                tests/test_no_host_sync.py tests/test_relative_position.py; then
            TESTS_OK=true
        else
            TESTS_OK=false
        fi
    else
        echo "pytest is not importable here: the CUDA tests did not run"
    fi
fi
fi

if stage 1; then
echo "== 1. training steps: benchmarks/gpu_step.py ${STEP_ARGS[*]} (at ${SECONDS} s)"
# Printed as it runs (tee), not when it ends, so that a stage cut short still shows its figures.
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$PYTHON" benchmarks/gpu_step.py "${STEP_ARGS[@]}" \
    | tee "$WORK/step.out"
STEP_JSON="$(tail -n 1 "$WORK/step.out")"
fi

if stage 2; then
echo "== 2. fairseq-train: pmlm + unilm_v2_base against masked_lm + roberta_base (at ${SECONDS} s)"
TEXT="${TEXT:-}"
for folder in "$ROOT/../shared/data/wikitext2" "$ROOT/.gpu-data"; do
    if [ -z "$TEXT" ] && [ -f "$folder/valid.txt" ]; then
        TEXT="$WORK/wikitext2.txt"
        cat "$folder/valid.txt" > "$TEXT"
        [ -f "$folder/test.txt" ] && cat "$folder/test.txt" >> "$TEXT"
    fi
done
if [ -z "$TEXT" ]; then
    TEXT="$WORK/random.txt"
    "$PYTHON" -c "
import random
random.seed(0)
words = [f'w{i}' for i in range(8000)]
for _ in range(4000):
    print(' '.join(random.choice(words) for _ in range(random.randint(20, 200))))" > "$TEXT"
fi
echo "data: $TEXT"
"$PYTHON" -m fairseq_cli.preprocess --only-source --trainpref "$TEXT" --validpref "$TEXT" \
    --destdir "$WORK/bin" --workers 2 > "$WORK/preprocess.log" 2>&1

COMMON=(--optimizer adam --adam-betas "(0.9,0.98)" --lr 1e-4 --lr-scheduler polynomial_decay
        --warmup-updates 10 --total-num-update 100000 --no-save --disable-validation
        --log-format json --seed 1 --sample-break-mode none "${SIZE[@]}" "${TRAIN[@]}")

# Median updates/s ("ups") of the train_inner json log intervals after the first two.
ups() {
    "$PYTHON" -c "
import json, statistics, sys
ups = [float(json.loads(line.split(' | ')[-1])['ups']) for line in open(sys.argv[1])
       if ' | train_inner | ' in line]
later = ups[2:] or ups
print(round(statistics.median(later), 3) if later else 'null')" "$1"
}

train() {  # name, precision flag(s)..., then extra args after --
    local name="$1"; shift
    local log="$WORK/$name.log"
    if "$PYTHON" -m fairseq_cli.train "$WORK/bin" --user-dir "$ROOT/fairseq_unilmv2" \
            "${COMMON[@]}" "$@" > "$log" 2>&1; then
        ups "$log"
    else
        echo "fairseq-train $name failed; last lines:" >&2
        tail -n 20 "$log" >&2
        echo null
    fi
}

TRAIN_JSON="{"
for precision in $PRECISIONS; do
    case "$precision" in fp32) FLAG=();; *) FLAG=("--$precision");; esac
    MLM=$(train "masked_lm_$precision" "${FLAG[@]}" --task masked_lm --criterion masked_lm \
        --arch roberta_base --max-positions 512)
    echo "$precision masked_lm + roberta_base: $MLM updates/s"
    TRAIN_JSON+="\"masked_lm_$precision\": $MLM, "
    for backend in $PMLM_BACKENDS; do
        EXTRA=(--attention-backend "$backend")
        [ "$backend" = flex ] && EXTRA+=(--attention-dropout 0)
        PMLM=$(train "pmlm_${backend}_$precision" "${FLAG[@]}" --task pmlm --criterion pmlm \
            --arch unilm_v2_base "${EXTRA[@]}")
        RATIO=$("$PYTHON" -c "print(round($PMLM / $MLM, 3) if 'null' not in ('$PMLM', '$MLM') else 'null')")
        echo "$precision pmlm + unilm_v2_base ($backend attention): $PMLM updates/s, $RATIO x masked_lm"
        TRAIN_JSON+="\"pmlm_${backend}_$precision\": $PMLM, \"ratio_${backend}_$precision\": $RATIO, "
    done
done
TRAIN_JSON="${TRAIN_JSON%, }}"
fi

if stage 3; then
echo "== 3. beam-5 decoding: benchmarks/decode.py ${DECODE[*]} (at ${SECONDS} s)"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$PYTHON" benchmarks/decode.py "${DECODE[@]}" \
    | tee "$WORK/decode.out"
DECODE_JSON="$(tail -n 1 "$WORK/decode.out")"
fi

echo "{\"cuda_tests_passed\": $TESTS_OK, \"step\": $STEP_JSON, \"fairseq_train\": $TRAIN_JSON, \"decode\": $DECODE_JSON, \"dry_run\": $([ "$DRY" = 1 ] && echo true || echo false)}"
