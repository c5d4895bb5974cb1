#!/usr/bin/env bash
# RESULTS.md v3's pre-registered confirmation (results/confirm/PLAN.md), end to end: teachers,
# augmented + teacher-labelled data (schema 3: every row carries the teacher's shift), and exactly
# the sweeps the plan names. Every command is one a user would type; a sweep re-run with the same
# command skips the cells already in its results.csv, so this script resumes where it stopped.
#
#   bash bench/confirm.sh [WORK_DIR [LAST_STAGE]]   (default WORK_DIR .cache/runs, ignored by git)
#
# Stages: teachers, data, student (issue 23 item 3: which CPU student comes near its teacher),
# sweeps (the plan's contrasts, cheapest first), analysis (python -m bench.confirm).
set -euo pipefail
W=${1:-.cache/runs}
LAST=${2:-analysis}
GLUE=${KDAUG_GLUE_DIR:-../shared/data}
export HF_HUB_OFFLINE=1
mkdir -p "$W"

# --- 1. teachers ------------------------------------------------------------------------------
python -m bench.trec_splits "$W/trec"
[ -e "$W/teacher-trec/_SUCCESS" ] || kdaug teacher train --task trec --train "$W/trec/train.txt" --dev "$W/trec/dev.txt" \
    --epochs 5 --output "$W/teacher-trec"
[ -e "$W/teacher-sst2/_SUCCESS" ] || kdaug teacher train --task sst2 --epochs 1 --output "$W/teacher-sst2"
[ "$LAST" = teachers ] && exit 0

# --- 2. augmented, teacher-labelled data --------------------------------------------------------
label() {  # task input rows methods degrees copies output
    [ -e "$7/_SUCCESS" ] || kdaug run --task "$1" --input "$2" --max-rows "$3" --methods "$4" --degrees "$5" \
        --copies "$6" --teacher "$W/teacher-$1" --output "$7" --direct_num_workers 2 --direct_running_mode multi_processing
}
SST2=$GLUE/sst2/train.tsv
label trec "$W/trec/train.txt" 500 knn 0.1,0.3,0.5,0.7 16 "$W/trec/grid-500"
label sst2 "$SST2" 500 knn 0.1,0.3,0.5,0.7 16 "$W/sst2/grid-500"
label sst2 "$SST2" 2000 knn 0.1,0.3,0.5,0.7 4 "$W/sst2/grid-2000"
label sst2 "$SST2" 2000 knn,augpro-fgsm 0.3 4 "$W/sst2/methods-2000"
label sst2 "$SST2" 10000 knn 0.3 16 "$W/sst2/copies-10000"
[ "$LAST" = data ] && exit 0

# --- 3. which CPU student comes near its teacher (issue 23 item 3; PLAN.md, "The item-3 student") -----
# SST-2's first 10,000 train rows, KD on knn 0.3, seed 0, one thread per candidate, two candidates at
# a time (one per core); writes results/confirm/students.md and the chosen student to student.txt.
[ -e results/confirm/student.txt ] || python -m bench.bench_students --data "$W/sst2/copies-10000" \
    --dev "$GLUE/sst2/dev.tsv" --test "$GLUE/sst2/test.tsv" --candidates --seeds 0 --jobs 2 --teacher "$W/teacher-sst2" \
    --markdown results/confirm/students.md --choose results/confirm/student.txt
[ "$LAST" = student ] && exit 0

# --- 4. the planned sweeps, cheapest first -----------------------------------------------------------
TRAINING=(--batch-size 32 --max-steps 20000 --eval-every 50 --patience 6 --jobs 2)
declare -A DEV=([sst2]="$GLUE/sst2/dev.tsv" [trec]="$W/trec/dev.txt")
declare -A TEST=([sst2]="$GLUE/sst2/test.tsv" [trec]="$W/trec/test.txt")
seeds() { seq -s, "$1" $(($1 + $2 - 1)); }  # first, count
sweep() {  # task study student seeds [sweep options…] (student "": the 2-layer MiniLM default)
    local task=$1 study=$2 student=$3 seeds=$4
    shift 4
    kdaug sweep --dev "${DEV[$task]}" --test "${TEST[$task]}" --teacher "$W/teacher-$task" ${student:+--student "$student"} \
        --seeds "$seeds" "${TRAINING[@]}" --output "results/confirm/$study" "$@"
}
sweep sst2 sst2-cnn-methods cnn "$(seeds 100 10)" --data "size=2000:$W/sst2/methods-2000" --methods knn,augpro-fgsm \
    --degrees 0.3 --copies 4 --modes kd                                                                    # P5
sweep sst2 sst2-cnn cnn "$(seeds 100 16)" --data "size=500:$W/sst2/grid-500" --methods knn --degrees 0,0.3 --copies 16  # P4
sweep trec trec-cnn cnn "$(seeds 100 16)" --data "size=500:$W/trec/grid-500" --methods knn --degrees 0,0.1,0.3,0.5,0.7 \
    --copies 4                                                                                             # P1, P3
sweep trec trec-cnn cnn "$(seeds 100 16)" --data "size=500:$W/trec/grid-500" --methods knn --degrees 0.3 --copies 16  # P2, P3
read -r -a STUDENT < results/confirm/student.txt  # the item-3 student's sweep options, e.g. --student cnn-wordpiece
sweep sst2 sst2-student "" "$(seeds 100 10)" "${STUDENT[@]}" --data "size=500:$W/sst2/grid-500" \
    --data "size=2000:$W/sst2/grid-2000" --methods knn --degrees 0,0.1,0.3,0.5,0.7 --copies 4                # S3, S4
sweep sst2 sst2-transformer "" "$(seeds 100 5)" --freeze-embeddings --data "size=500:$W/sst2/grid-500" \
    --methods knn --degrees 0,0.3,0.7 --copies 4                                                           # S1, S2
[ "$LAST" = sweeps ] && exit 0

# --- 5. the planned analysis -----------------------------------------------------------------------
python -m bench.confirm
