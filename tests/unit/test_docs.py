"""The documentation stays true to the code: the settings reference is what the models say and describes
every option, and the README stays a front page (the rest is the docs site)."""

from __future__ import annotations

from helpers.harness import ROOT

from scripts import settings_reference


def test_the_settings_reference_is_what_the_models_say_and_describes_every_option():
    assert settings_reference.missing_descriptions() == []
    assert (ROOT / "docs" / "settings-reference.md").read_text() == settings_reference.page(), (
        "docs/settings-reference.md is out of date: run python scripts/settings_reference.py"
    )


def test_the_reference_lists_each_option_of_both_kinds_with_type_and_default():
    page = settings_reference.page()
    for option, type_words, default in [
        ("`confirm_within`", "duration (1m to 30d)", "`1d`"),
        ("`batch_size`", "int (≥ 1, ≤ 100)", "`100`"),
        ("`preference`", "one of `create_and_update`, `create_only`, `update_only`", "`create_and_update`"),
        ("`poll_interval`", "duration", "`5m`"),
        ("`in`", "list of str or int or float (or null)", "none"),
    ]:
        row = next((line for line in page.splitlines() if line.startswith(f"| {option} |")), None)
        assert row is not None and type_words in row and f"| {default} |" in row, (option, row)


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.splitlines()[2:6] == [
        "```bash",
        "make run    # Airflow at http://127.0.0.1:8080 with the Kandji and Oomnitza sandbox (installs first)",
        "make test   # the whole test suite (installs first)",
        "```",
    ]
    for page in ("integration-files", "presets", "workflows", "connections", "page", "deploy", "security"):
        assert f"(docs/{page}.md)" in readme, page
        assert (ROOT / "docs" / f"{page}.md").exists()
