from embgraft.console import display_width, format_table, pad


def test_display_width_counts_cjk_as_two():
    assert (display_width("abc"), display_width("中国"), display_width("Ａ1")) == (3, 4, 3)
    assert pad("中", 4) == "中  " and pad("中", 4, right=True) == "  中"


def test_columns_line_up_on_screen_with_cjk_cells():
    lines = format_table([("token", "id", "pieces"), ("北京大学", "7", "北京 大学"), ("a", "12", "-")], "lrl")
    assert lines == [
        "token     id  pieces",
        "-----------------------",  # as wide as the widest line on screen (23 columns)
        "北京大学   7  北京 大学",
        "a         12  -",
    ]


def test_rules_may_count_from_the_end():
    lines = format_table([("m", "n"), ("a", "1"), ("total", "1")], "lr", rules_after=(0, -2))
    assert lines == ["m      n", "--------", "a      1", "--------", "total  1"]
