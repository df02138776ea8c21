#!/usr/bin/env bash
# Fine-tune with early stopping from CI: create a job, wait for it with a time limit, branch on
# ftctl's exit code, and read the best step from the job's JSON.
#
#   TRAINING_FILE=file-... VALIDATION_FILE=file-... MODEL=... examples/ci.sh
#
# TRAINING_FILE and VALIDATION_FILE may also be local .jsonl files: ftctl checks them, uploads them
# (once: identical bytes are not sent again) and waits until the server has validated them.
#
# With TOGETHER_API_KEY set it uses Together's API; without it, ftctl's built-in simulator
# (SIM_SCENARIO picks the simulated loss curve: plateau, improving, nan, diverging, noisy, error).
#
# Prints key=value lines on stdout and appends them to $GITHUB_OUTPUT when GitHub Actions provides
# it: `job` as soon as the job exists and `status` on every path (timeout and failure included, so
# a later step can cancel a job still running); `early_stopped`, `best_step`, `best_eval_loss` and
# `model` when it completed. In GitHub Actions, `ftctl wait` also appends the Markdown report to
# the step summary, and this script prints the annotations (`ftctl report --format github`).
# Exits with ftctl's code: 0 completed, 3 timed out (the job keeps running), 5 the job failed or
# was cancelled, other codes as in `ftctl --help`. Needs bash, ftctl, and jq or python3.
set -euo pipefail

FTCTL=${FTCTL:-ftctl}
MODEL=${MODEL:-Qwen/Qwen3.5-9B}
TRAINING_FILE=${TRAINING_FILE:-file-train}
VALIDATION_FILE=${VALIDATION_FILE:-file-val}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-2h}

# field NAME: print one top-level field of the JSON object on stdin ("" when null or missing).
field() {
    if command -v jq >/dev/null 2>&1; then
        jq -r --arg name "$1" 'if .[$name] == null then "" else .[$name] end'
    else
        python3 -c 'import json, sys
value = json.load(sys.stdin).get(sys.argv[1])
print("" if value is None else value if isinstance(value, str) else json.dumps(value))' "$1"
    fi
}

say() { echo "ci.sh: $*" >&2; }

# output KEY VALUE: one key=value line on stdout and, in GitHub Actions, in $GITHUB_OUTPUT.
output() {
    printf '%s=%s\n' "$1" "$2"
    if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
        printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
    fi
}

# GitHub reads annotations from stdout; `wait --json` keeps its stdout for the JSON, so ask for them.
annotate() {
    if [[ "${GITHUB_ACTIONS:-}" == "true" ]]; then
        "$FTCTL" report "$job" --format github || true
    fi
}

create=(create --training-file "$TRAINING_FILE" --validation-file "$VALIDATION_FILE" --model "$MODEL"
        --n-epochs 5 --n-evals 10 --early-stopping --patience 2 --min-delta 0.001 --quiet)
if [[ -z "${TOGETHER_API_KEY:-}" && -n "${SIM_SCENARIO:-}" ]]; then
    create+=(--sim-scenario "$SIM_SCENARIO")
fi

# A bad request is exit 2 here, with nothing created; `set -e` stops the script with that code.
job=$("$FTCTL" "${create[@]}")
output job "$job"  # now, before any wait: whatever happens next, a later step can find the job
say "created $job; waiting up to $WAIT_TIMEOUT (progress on stderr)"

# wait prints the job as JSON on stdout when it ends, and also when it times out.
code=0
result=$("$FTCTL" wait "$job" --timeout "$WAIT_TIMEOUT" --json) || code=$?
if [[ -n "$result" ]]; then
    output status "$(field status <<<"$result")"
fi
annotate
case $code in
    0) ;;
    3)
        say "timed out after $WAIT_TIMEOUT; $job is still $(field status <<<"$result") and keeps running"
        say "resume with: ftctl wait $job    cancel with: ftctl cancel $job --yes"
        exit 3 ;;
    5)
        say "$job ended as $(field status <<<"$result"); its last events:"
        "$FTCTL" events "$job" >&2 || true
        exit 5 ;;
    *)
        say "ftctl wait failed with exit code $code (see ftctl --help)"
        exit "$code" ;;
esac

early_stopped=$(field early_stopped <<<"$result")
best_step=$(field early_stopping_best_step <<<"$result")
best_eval_loss=$(field early_stopping_best_metric <<<"$result")
model=$(field model_output_name <<<"$result")

if [[ "$early_stopped" == "true" ]]; then
    say "early stopping fired: the checkpoint of step $best_step (eval_loss $best_eval_loss) is the model"
else
    say "ran to the end without stopping early"
fi

output early_stopped "$early_stopped"
output best_step "$best_step"
output best_eval_loss "$best_eval_loss"
output model "$model"
