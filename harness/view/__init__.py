"""The maintainers' view: runs, items and their grades, looked at item by item in a web app that
only a signed-in maintainer can open (the third door for held-out text; every held-out item shown
is logged). Public surface: `app.ViewApp`, `accesslog`.

Nothing is imported here: the command line reads `queries`' names to build its parser, and every
command would otherwise pay for the web app's imports (about 0.15 s)."""
