from robot_parl.models.vla.prompt import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPACE_ID,
    load_tokenizer,
    prompt_ids,
    prompt_text,
    write_offline_tokenizer,
)


def test_prompt_is_openvla_s(tmp_path):
    assert prompt_text("Pick up the Cube ") == "In: What action should the robot take to pick up the cube?\nOut:"


def test_offline_tokenizer_keeps_llama_special_ids(tmp_path):
    write_offline_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (BOS_ID, EOS_ID, PAD_ID)
    ids = prompt_ids(tok, "open the drawer")
    assert ids[0] == BOS_ID and ids[-1] == SPACE_ID
    assert all(i < 31744 for i in ids)  # text never produces action ids
    assert tok.decode(ids[1:-1]).strip() == prompt_text("open the drawer")
    assert prompt_ids(tok, "a") != prompt_ids(tok, "b")


def test_missing_tokenizer_names_the_directory(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_tokenizer(tmp_path)
