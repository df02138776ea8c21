"""The base models the simulator fine-tunes: a selection of those Together's fine-tuning docs list
(docs.together.ai, "Supported models" and the reasoning, function-calling and vision pages), each
with the limits ``GET /v1/fine-tunes/models/limits`` answers. A model not here is refused at create,
as the real API refuses a model it does not fine-tune.

The numbers are the shape of the real ones (context lengths and batch sizes grow and shrink with
the model's size), not a copy of any one day's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftctl.errors import NotFound


@dataclass(frozen=True)
class Model:
    context: int  # max_seq_length for SFT
    lora_batch: int
    full_batch: int  # 0: LoRA only
    reasoning: bool = False
    tools: bool = False
    vision: bool = False


def _family(prefix: str, sizes: dict[str, Model]) -> dict[str, Model]:
    return {prefix + size: model for size, model in sizes.items()}


MODELS: dict[str, Model] = {
    **_family("Qwen/Qwen3.5-", {
        "0.8B": Model(32_768, 32, 16, True, True), "2B": Model(32_768, 32, 16, True, True),
        "4B": Model(32_768, 16, 8, True, True), "9B": Model(32_768, 8, 8, True, True),
        "27B": Model(32_768, 8, 4, True, True), "35B-A3B": Model(32_768, 8, 0, True, True),
        "122B-A10B": Model(16_384, 4, 0, True, True), "397B-A17B": Model(16_384, 2, 0, True, True)}),
    **_family("Qwen/Qwen3-", {
        "0.6B": Model(32_768, 32, 16, True, True), "1.7B": Model(32_768, 32, 16, True, True),
        "4B": Model(32_768, 16, 8, True, True), "8B": Model(32_768, 8, 8, True, True),
        "14B": Model(32_768, 8, 4, True, True), "32B": Model(32_768, 8, 4, True, True),
        "30B-A3B": Model(32_768, 8, 0, True, True), "235B-A22B": Model(16_384, 2, 0, True, True),
        "8B-Base": Model(32_768, 8, 8), "14B-Base": Model(32_768, 8, 4)}),
    "Qwen/Qwen3-Next-80B-A3B-Thinking": Model(16_384, 4, 0, True, True),
    "Qwen/Qwen3.6-35B-A3B": Model(32_768, 8, 0, True, True),
    "Qwen/Qwen2.5-7B-Instruct": Model(32_768, 8, 8, tools=True),
    "Qwen/Qwen2.5-14B-Instruct": Model(32_768, 8, 4, tools=True),
    "Qwen/Qwen2.5-72B-Instruct": Model(16_384, 4, 0, tools=True),
    "Qwen/Qwen2.5-VL-7B-Instruct": Model(16_384, 8, 4, vision=True),
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference": Model(131_072, 8, 8, tools=True),
    "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference": Model(32_768, 4, 0, tools=True),
    "meta-llama/Llama-3.2-1B-Instruct": Model(131_072, 32, 16),
    "meta-llama/Llama-3.2-3B-Instruct": Model(131_072, 16, 8),
    "meta-llama/Llama-3.3-70B-Instruct-Reference": Model(32_768, 4, 0, tools=True),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": Model(16_384, 4, 0, vision=True),
    "google/gemma-3-4b-it": Model(32_768, 16, 8, vision=True),
    "google/gemma-3-27b-it": Model(32_768, 4, 0, vision=True),
    "google/gemma-4-26B-A4B-it": Model(32_768, 8, 0, True, True, True),
    "google/gemma-4-31B-it": Model(32_768, 4, 0, True, True, True),
    "openai/gpt-oss-20b": Model(16_384, 8, 4, True, True),
    "openai/gpt-oss-120b": Model(16_384, 4, 0, True, True),
    "zai-org/GLM-4.6": Model(16_384, 2, 0, True, True),
    "zai-org/GLM-4.7": Model(16_384, 2, 0, True, True),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": Model(16_384, 4, 0, True),
    "mistralai/Mistral-7B-Instruct-v0.2": Model(32_768, 8, 8),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": Model(32_768, 4, 0),
}
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def model(name: str) -> Model:
    found = MODELS.get(name)
    if found is None:
        base = name.lower().rsplit("/", 1)[-1]
        near = [m for m in MODELS if m.lower().rsplit("/", 1)[-1] == base]
        raise NotFound(f"model {name!r} is not available for fine-tuning"
                       + (f" (did you mean {near[0]}?)" if near else " (for example Qwen/Qwen3.5-9B)"))
    return found


def limits(name: str, *, max_epochs: int, max_evals: int, max_checkpoints: int) -> dict[str, Any]:
    """``GET /v1/fine-tunes/models/limits?model_name=``: the shape the vendor SDK reads before a create."""
    m = model(name)
    # LoRA-only models report zeros here (``docs/api.md`` §6)
    full = {"min_batch_size": 1 if m.full_batch else 0, "max_batch_size": m.full_batch,
            "max_batch_size_dpo": m.full_batch // 2 if m.full_batch > 1 else m.full_batch}
    return {
        "model_name": name, "max_num_epochs": max_epochs, "max_num_evals": max_evals,
        "max_num_checkpoints": max_checkpoints, "min_learning_rate": 1e-8, "max_learning_rate": 1.0,
        "max_seq_length_sft": m.context, "max_seq_length_dpo": m.context // 2, "min_max_seq_length": 512,
        "default_gradient_accumulation_steps": 1, "merge_output_lora": True,
        "supports_full_training": bool(m.full_batch), "supports_reasoning": m.reasoning,
        "supports_tools": m.tools, "supports_vision": m.vision,
        "lora_training": {"default_rank": 16, "max_rank": 64, "min_batch_size": 1, "max_batch_size": m.lora_batch,
                          "max_batch_size_dpo": max(1, m.lora_batch // 2), "target_modules": LORA_MODULES},
        "full_training": full,
    }
