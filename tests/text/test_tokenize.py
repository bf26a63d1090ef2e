import pickle

import pytest

from helpers.imports import assert_not_imported

from embgraft.errors import ConfigError
from embgraft.text.tokenize import TOKENIZERS, get_tokenizer


def test_char_drops_all_whitespace_but_keeps_full_width_text():
    tok = get_tokenizer("char")
    assert tok("我 爱\u3000北京！Ａ１\t\n") == ["我", "爱", "北", "京", "！", "Ａ", "１"]


def test_char_keep_whitespace():
    tok = get_tokenizer("char", keep_whitespace=True)
    assert tok("我 爱\u3000") == ["我", " ", "爱", "\u3000"]


def test_space():
    assert get_tokenizer("space")("  北京 大学\u3000生\tok ") == ["北京", "大学", "生", "ok"]


def test_word_uses_jieba_and_drops_whitespace():
    tok = get_tokenizer("word")
    assert tok("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    assert tok("我爱 北京\u3000天安门") == ["我", "爱", "北京", "天安门"]


def test_word_user_dict_is_private_to_its_tokenizer(tmp_path):
    user_dict = tmp_path / "user.dict"
    user_dict.write_text("嫁接向量 10 n\n", encoding="utf-8")
    with_dict = get_tokenizer("word", user_dict=user_dict)
    plain = get_tokenizer("word")
    assert with_dict("嫁接向量很好用") == ["嫁接向量", "很", "好", "用"]
    assert plain("嫁接向量很好用") == ["嫁接", "向量", "很", "好", "用"]
    # DataLoader workers pickle tokenizers; the jieba object is rebuilt on the other side.
    assert pickle.loads(pickle.dumps(with_dict))("嫁接向量很好用") == ["嫁接向量", "很", "好", "用"]


def test_missing_user_dict_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="user dictionary not found"):
        get_tokenizer("word", user_dict=tmp_path / "nope.txt")


def test_unknown_level_names_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_tokenizer("sentencepiece")
    assert (
        str(info.value)
        == "unknown tokenizer level 'sentencepiece'; choose one of: char, word, space"
    )
    assert list(TOKENIZERS) == ["char", "word", "space"]


def test_option_for_the_wrong_level_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="user_dict do not apply to tokenizer level 'char'"):
        get_tokenizer("char", user_dict=tmp_path / "x.txt")
    with pytest.raises(ConfigError, match="keep_whitespace do not apply to tokenizer level 'word'"):
        get_tokenizer("word", keep_whitespace=True)


def test_char_level_never_imports_jieba():
    code = "from embgraft.text.tokenize import get_tokenizer\nget_tokenizer('char')('你好'); get_tokenizer('word')\n"
    assert_not_imported(code, ["jieba"])


def test_recipe_round_trip_carries_its_user_dictionary(tmp_path):
    from embgraft.text.tokenize import Recipe

    user = tmp_path / "mine.txt"
    user.write_text("量子纠缠态 10 n\n", encoding="utf-8")
    recipe = Recipe(level="word", user_dict=str(user), lowercase=True, max_len=32)
    out = tmp_path / "graft"
    out.mkdir()
    recipe.save(out)
    user.unlink()  # the directory must not depend on the original file
    back = Recipe.load(out)
    assert (back.level, back.lowercase, back.max_len) == ("word", True, 32)
    assert back.user_dict == str(out / "user_dict.txt")
    assert "量子纠缠态" in back.tokenizer()("ABC量子纠缠态")
    assert back.tokenizer()("ABC")[0] == "abc"


def test_recipe_problems_reported_together():
    from embgraft.text.tokenize import Recipe

    with pytest.raises(ConfigError) as e:
        Recipe(level="bpe", user_dict="x.txt", max_len=0)
    assert "level must be one of" in str(e.value) and "max_len must be a positive integer" in str(e.value)
