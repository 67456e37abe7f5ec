"""`--help` that helps: every command, at every level, says what it does, and every argument and
option says what it wants (55 said nothing before this test)."""

import argparse

import pytest

from harness.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, path=()):
    """(command words, parser) for every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _commands(child, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_there_are_commands_to_check():
    assert len(COMMANDS) > 40 and ("pool", "import") in dict(COMMANDS)


@pytest.mark.parametrize("words, parser", COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_every_command_says_what_it_does_and_what_each_argument_is(words, parser, capsys):
    assert parser.description, words
    for action in parser._actions:
        if not isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)):
            assert action.help, (words, action.dest)
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: holdout {' '.join(words)}") and parser.description[:30] in out
