"""The Jinja environment every page is rendered with."""

from __future__ import annotations

from app.web.templating import build_environment


def test_templates_share_the_environments_globals_and_keep_their_own_apart():
    env = build_environment()
    template = env.get_template("clients/_results.html")
    # No ChainMap copied into every render's context (see SaldoEnvironment).
    assert template.globals is env.globals
    env.globals["added_later"] = "seen"
    assert env.from_string("{{ added_later }}").render() == "seen"
    own = env.from_string("{{ mine }} {{ added_later }}", globals={"mine": "own"})
    assert own.render() == "own seen"
    assert "mine" not in env.globals
