"""OpenVLA's prompt, its tokenization, and the small offline tokenizer that stands in for Llama's in CI.

A real checkpoint directory carries Llama's tokenizer files and they are read from there (local files
only). The stand-in keeps every id that matters to a VLA where Llama has it: <unk> 0, BOS 1, EOS 2,
the 256 byte-fallback tokens 3..258, "▁" 29871, PAD 32000; the action ids 31744..31999 are produced by
the action tokenizer, never by text.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import AutoTokenizer, LlamaConfig, PreTrainedTokenizerBase, PreTrainedTokenizerFast

BOS_ID, EOS_ID, PAD_ID = 1, 2, 32000
# Llama's "▁" token: OpenVLA appends it to every prompt before the action tokens.
SPACE_ID = 29871
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def prompt_text(instruction: str) -> str:
    """OpenVLA's prompt for an instruction (lower-cased, as its training data pipeline does)."""
    return f"In: What action should the robot take to {instruction.strip().lower()}?\nOut:"


def prompt_ids(tokenizer: PreTrainedTokenizerBase, instruction: str) -> list[int]:
    """Token ids of the prompt: BOS first, ``SPACE_ID`` last (appended when the tokenizer did not end on it)."""
    ids = list(tokenizer(prompt_text(instruction), add_special_tokens=True)["input_ids"])
    if not ids or ids[0] != BOS_ID:
        raise ValueError(f"the tokenizer did not start the prompt with BOS {BOS_ID}: {ids[:5]}")
    if ids[-1] != SPACE_ID:
        ids.append(SPACE_ID)
    return ids


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer stored in a checkpoint directory (never downloaded)."""
    directory = Path(directory)
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(f"{directory}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); copy the Llama "
                                f"tokenizer of the checkpoint next to its config.json")
    # The checkpoint's config.json is OpenVLA's, not a transformers model type: say the LM is Llama's.
    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True, config=LlamaConfig())


def write_offline_tokenizer(directory: str | Path) -> None:
    """Write the stand-in tokenizer (Llama ids for specials, bytes, "▁" and PAD) into ``directory``."""
    specials = {"<unk>": 0, "<s>": BOS_ID, "</s>": EOS_ID, "<PAD>": PAD_ID}
    vocab = dict(specials)
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    vocab["▁"] = SPACE_ID
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS_ID)])
    tok.add_special_tokens([AddedToken(name, special=True) for name in specials])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<PAD>").save_pretrained(str(directory))
