"""create: start a fine-tuning job (SFT or DPO), optionally with early stopping, and optionally
wait for it."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands import completers
from ftctl.commands.common import command
from ftctl.commands.session import Session, job_view
from ftctl.commands.options import BEHAVIOUR, INTERVAL, NO_CI_REPORT, TIMEOUT, WAIT, check_wait_options
from ftctl.commands.waiting import wait_for
from ftctl.output.render import Shown

DATA, TRAINING, LORA, DPO, EARLY, TRACKING, SIM = (
    "Data and model", "Training", "LoRA", "DPO", "Early stopping", "Weights & Biases", "Simulator")


def register(app: typer.Typer) -> None:
    command(app, "create", output=("job", "request"), help=CREATE_HELP)(create)


CREATE_HELP = """Start a fine-tuning job (SFT or DPO), optionally with early stopping.

Every check runs before anything is sent: bad input is one line on stderr, naming the flag, and exit 2.

Early stopping halts when eval_loss has not improved by more than --min-delta for --patience consecutive evaluations after --warmup-evals, promotes the best checkpoint and refunds the unused steps. It needs --validation-file, and --n-evals >= patience + warmup-evals + 1; without --n-evals, --early-stopping runs 10 evaluations (or patience + warmup-evals + 2 if that is more, so a halt can still refund steps). Warmup 0 and 1 behave the same (the first evaluation always sets the best); use 2 or more to ignore early noise.
"""


def _alias(flag: str) -> object:
    """A long spelling that keeps working but is not listed in --help (one name per option there)."""
    return typer.Option(flag, hidden=True, show_default=False)


def create(
    session: Session,
    training_file: Annotated[str, typer.Option("--training-file", "-t", help="Training file id, or a local "
                                               ".jsonl to check and upload first.",
                                               rich_help_panel=DATA, show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model to fine-tune.",
                                                 rich_help_panel=DATA, show_default=False)] = None,
    from_checkpoint: Annotated[Optional[str], typer.Option(
        help="Continue from a checkpoint (ft-ID or ft-ID:STEP) instead of --model.",
        rich_help_panel=DATA, show_default=False)] = None,
    validation_file: Annotated[Optional[str], typer.Option("--validation-file", "-v", help="Validation file id, "
                                                           "or a local .jsonl (as -t).",
                                                           rich_help_panel=DATA, show_default=False)] = None,
    suffix: Annotated[Optional[str], typer.Option(help="Up to 40 characters added to the output model's name.",
                                                  rich_help_panel=DATA, show_default=False)] = None,
    n_epochs: Annotated[int, typer.Option(help="Epochs.", rich_help_panel=TRAINING)] = 1,
    n_evals: Annotated[Optional[int], typer.Option(
        help="Evaluations on the validation set over the run. Default: 0, or 10 with --early-stopping.",
        rich_help_panel=TRAINING, show_default=False)] = None,
    n_checkpoints: Annotated[int, typer.Option(help="Checkpoints saved over the run.",
                                               rich_help_panel=TRAINING)] = 1,
    batch_size: Annotated[str, typer.Option(help="Batch size, or 'max'.", rich_help_panel=TRAINING)] = "max",
    learning_rate: Annotated[Optional[float], typer.Option(
        "--learning-rate", help="Peak learning rate, also --lr (default: 1e-05).", rich_help_panel=TRAINING,
        show_default=False)] = None,
    lr: Annotated[Optional[float], _alias("--lr")] = None,
    lr_scheduler_type: Annotated[str, typer.Option(
        help="cosine or linear.", rich_help_panel=TRAINING,
        autocompletion=completers.choices("cosine", "linear"))] = "cosine",
    min_lr_ratio: Annotated[float, typer.Option(help="Final learning rate as a fraction of the peak.",
                                                rich_help_panel=TRAINING)] = 0.0,
    scheduler_num_cycles: Annotated[float, typer.Option(help="Cosine cycles.", rich_help_panel=TRAINING)] = 0.5,
    warmup_ratio: Annotated[float, typer.Option(help="Fraction of steps for learning-rate warmup.",
                                                rich_help_panel=TRAINING)] = 0.0,
    max_grad_norm: Annotated[float, typer.Option(help="Gradient clipping (0 disables).",
                                                 rich_help_panel=TRAINING)] = 1.0,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay of the optimizer.",
                                                rich_help_panel=TRAINING)] = 0.0,
    packing: Annotated[bool, typer.Option(help="Pack examples into sequences.", rich_help_panel=TRAINING)] = True,
    max_seq_length: Annotated[Optional[int], typer.Option(
        help="Longest sequence in tokens; longer examples are truncated (default: the model's).",
        rich_help_panel=TRAINING, show_default=False)] = None,
    gradient_accumulation_steps: Annotated[Optional[int], typer.Option(
        help="Batches whose gradients add up before each optimizer step (default: the server's).",
        rich_help_panel=TRAINING, show_default=False)] = None,
    random_seed: Annotated[Optional[int], typer.Option(help="Seed (also fixes the simulator's curve).",
                                                       rich_help_panel=TRAINING, show_default=False)] = None,
    training_method: Annotated[str, typer.Option(help="sft or dpo.", rich_help_panel=TRAINING,
                                                 autocompletion=completers.choices("sft", "dpo"))] = "sft",
    train_on_inputs: Annotated[Optional[str], typer.Option(
        help="SFT: true, false or auto.", rich_help_panel=TRAINING, show_default=False,
        autocompletion=completers.choices("true", "false", "auto"))] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora/--no-lora", help="LoRA or full training "
                                                 "(default: the server's, LoRA)", rich_help_panel=LORA,
                                                 show_default=False)] = None,
    lora_r: Annotated[Optional[int], typer.Option(help="Rank of the LoRA matrices (default: 16).",
                                                  rich_help_panel=LORA, show_default=False)] = None,
    lora_alpha: Annotated[Optional[float], typer.Option(help="LoRA scaling factor alpha (default: 2 x rank).",
                                                        rich_help_panel=LORA, show_default=False)] = None,
    lora_dropout: Annotated[Optional[float], typer.Option(help="Dropout on the LoRA layers, >= 0 and < 1 "
                                                          "(default: 0).", rich_help_panel=LORA,
                                                          show_default=False)] = None,
    lora_trainable_modules: Annotated[Optional[str], typer.Option(
        help="Modules that get LoRA adapters, comma-separated (default: all-linear).", rich_help_panel=LORA,
        show_default=False)] = None,
    dpo_beta: Annotated[Optional[float], typer.Option(help="DPO: how far the model may move from the "
                                                      "reference, > 0 (default: the server's).",
                                                      rich_help_panel=DPO, show_default=False)] = None,
    dpo_normalize_logratios_by_length: Annotated[Optional[bool], typer.Option(
        "--dpo-normalize-logratios-by-length", help="DPO: divide the log-ratios by the sequence length.",
        rich_help_panel=DPO, show_default=False)] = None,
    dpo_reference_free: Annotated[Optional[bool], typer.Option(
        "--dpo-reference-free", help="DPO: no reference model (the log-ratios are the policy's alone).",
        rich_help_panel=DPO, show_default=False)] = None,
    rpo_alpha: Annotated[Optional[float], typer.Option(help="DPO: weight of the added NLL (RPO) loss, >= 0.",
                                                       rich_help_panel=DPO, show_default=False)] = None,
    simpo_gamma: Annotated[Optional[float], typer.Option(help="DPO: SimPO target reward margin, >= 0.",
                                                         rich_help_panel=DPO, show_default=False)] = None,
    early_stopping: Annotated[bool, typer.Option(
        "--early-stopping",
        help="Halt when eval_loss stops improving; promote the best checkpoint; refund unused steps.",
        rich_help_panel=EARLY)] = False,
    early_stopping_enabled: Annotated[bool, _alias("--early-stopping-enabled")] = False,
    no_early_stopping: Annotated[bool, _alias("--no-early-stopping")] = False,
    patience: Annotated[Optional[int], typer.Option(
        "--patience", help="Consecutive non-improving evaluations allowed before stopping, >= 1 "
        "(server default: 2)", rich_help_panel=EARLY, show_default=False)] = None,
    early_stopping_patience: Annotated[Optional[int], _alias("--early-stopping-patience")] = None,
    min_delta: Annotated[Optional[float], typer.Option(
        "--min-delta", help="A decrease must be more than this to count as an improvement, >= 0 "
        "(server default: 0.0)", rich_help_panel=EARLY, show_default=False)] = None,
    early_stopping_min_delta: Annotated[Optional[float], _alias("--early-stopping-min-delta")] = None,
    warmup_evals: Annotated[Optional[int], typer.Option(
        "--warmup-evals", help="Evaluations that may set the best but never count toward patience, >= 0 "
        "(server default: 1)", rich_help_panel=EARLY, show_default=False)] = None,
    early_stopping_warmup_evals: Annotated[Optional[int], _alias("--early-stopping-warmup-evals")] = None,
    wandb_project_name: Annotated[Optional[str], typer.Option(
        help="W&B project to log the run to (the key is read from WANDB_API_KEY, never a flag).",
        rich_help_panel=TRACKING, show_default=False)] = None,
    wandb_name: Annotated[Optional[str], typer.Option(help="W&B run name.", rich_help_panel=TRACKING,
                                                      show_default=False)] = None,
    wandb_entity: Annotated[Optional[str], typer.Option(help="W&B team or user that owns the project.",
                                                        rich_help_panel=TRACKING, show_default=False)] = None,
    wandb_base_url: Annotated[Optional[str], typer.Option(help="W&B server, for a self-hosted one.",
                                                          rich_help_panel=TRACKING, show_default=False)] = None,
    sim_scenario: Annotated[Optional[str], typer.Option(
        metavar="NAME|FILE", help="The job's loss curve on the simulator (--backend sim, or a `sim serve` "
        "reached with --backend together): a preset (plateau, improving, nan, diverging, noisy, error) or a "
        "JSON file {\"eval_loss\": [...], \"steps_per_epoch\": N}.", rich_help_panel=SIM,
        show_default=False, autocompletion=completers.scenarios)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the new job's id.",
                                        rich_help_panel=BEHAVIOUR)] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the request and print the body that would "
                                          "be sent, as JSON; create nothing. The plan of steps and the price "
                                          "estimate go to stderr.", rich_help_panel=BEHAVIOUR)] = False,
    wait: WAIT = False,
    timeout: TIMEOUT = None,
    interval: INTERVAL = None,
    no_ci_report: NO_CI_REPORT = False,
) -> Shown | None:
    import os

    from ftctl.create_request import CreateOptions

    check_wait_options(wait, timeout, interval)  # before anything is sent
    # The flag the user typed, for each field whose check may fail: errors name it (issue 12).
    typed: dict[str, str] = {}
    learning_rate = _one("learning_rate", ("--learning-rate", learning_rate), ("--lr", lr), typed)
    patience = _one("early_stopping_patience", ("--patience", patience),
                    ("--early-stopping-patience", early_stopping_patience), typed)
    min_delta = _one("early_stopping_min_delta", ("--min-delta", min_delta),
                     ("--early-stopping-min-delta", early_stopping_min_delta), typed)
    warmup_evals = _one("early_stopping_warmup_evals", ("--warmup-evals", warmup_evals),
                        ("--early-stopping-warmup-evals", early_stopping_warmup_evals), typed)
    if early_stopping_enabled:
        typed["early_stopping_enabled"] = "--early-stopping-enabled"
    early_stopping = (early_stopping or early_stopping_enabled) and not no_early_stopping

    options = CreateOptions(
        training_file=training_file, model=model, from_checkpoint=from_checkpoint,
        validation_file=validation_file, suffix=suffix, n_epochs=n_epochs, n_evals=n_evals,
        n_checkpoints=n_checkpoints, batch_size=batch_size,
        learning_rate=1e-5 if learning_rate is None else learning_rate,
        lr_scheduler_type=lr_scheduler_type.lower(), min_lr_ratio=min_lr_ratio,
        scheduler_num_cycles=scheduler_num_cycles, warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm,
        weight_decay=weight_decay, packing=packing, max_seq_length=max_seq_length,
        gradient_accumulation_steps=gradient_accumulation_steps, random_seed=random_seed,
        training_method=training_method, train_on_inputs=train_on_inputs, lora=lora, lora_r=lora_r,
        lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_trainable_modules=lora_trainable_modules,
        dpo_beta=dpo_beta, dpo_normalize_logratios_by_length=dpo_normalize_logratios_by_length,
        dpo_reference_free=dpo_reference_free, rpo_alpha=rpo_alpha, simpo_gamma=simpo_gamma,
        early_stopping=early_stopping, patience=patience, min_delta=min_delta, warmup_evals=warmup_evals,
        # A secret is read from the environment, never from a flag (it would show in `ps` and history).
        wandb_api_key=os.environ.get("WANDB_API_KEY") or None, wandb_project_name=wandb_project_name,
        wandb_name=wandb_name, wandb_entity=wandb_entity, wandb_base_url=wandb_base_url)
    result = session.service.create(options, scenario=sim_scenario, dry_run=dry_run, flags=typed,
                                    on_note=None if quiet else session.term.note)
    for warning in result.warnings:
        session.term.warn(warning)
    if not quiet and result.preview is not None:  # on stderr: a dry run's stdout is the exact body
        from ftctl.output.preview import lines

        for line in lines(result.preview, result.body, dry_run=dry_run):
            session.term.note(line)
    if dry_run:
        from ftctl.wire import SECRET_BODY_FIELDS

        return Shown({k: ("****" if k in SECRET_BODY_FIELDS else v) for k, v in result.body.items()},
                     kind="request")
    job = result.job
    if quiet:
        session.term.write(job["id"])
    elif wait:
        if not session.json:  # under --json, the one object printed is the job at its end
            session.term.note(f"Created {job['id']}; waiting for it to end (Ctrl-C stops waiting, not the job).")
    else:
        session.render(job_view(job, result.body))
        if not session.json and not session.term.is_tty:  # on a terminal, the view's "early stop" row says it
            from ftctl.output.views import early_stopping_line

            session.term.note(f"Early stopping: {early_stopping_line(job, result.body)}")
        if not session.json:
            session.term.note(f"Follow it with: ftctl wait {job['id']}   (then: ftctl metrics {job['id']})")
    if wait:
        wait_for(session, job["id"], timeout=timeout, interval=interval, report=not quiet,
                 ci_report=not no_ci_report)
    return None


def _one(field: str, main: tuple[str, object], alias: tuple[str, object], typed: dict[str, str]) -> object:
    """The value of an option given by its name or its hidden alias; records which was typed."""
    (main_flag, main_value), (alias_flag, alias_value) = main, alias
    if alias_value is None:
        if main_value is not None:
            typed[field] = main_flag
        return main_value
    if main_value is not None and main_value != alias_value:
        from ftctl.errors import InvalidInput

        raise InvalidInput(f"{main_flag} and {alias_flag} are one setting; give it once "
                           f"(got {main_value} and {alias_value})")
    typed[field] = alias_flag
    return alias_value
