"""Errors a person reads. The CLI prints these without a traceback and exits 2; anything else that
escapes is a bug (exit 1, the traceback through the egress gate).

    HoldoutError                  a problem the user can fix; the message says what and where
        ConfigError               a config, suite, pool or decisions file is wrong (file:line, key)
        RuleError                 a rule function failed or returned no score (grading/rules)
        VaultError                the vault cannot be opened or used (vault/keys)
            DecryptError          a blob does not decrypt: wrong key, changed or moved file
        LedgerError               the exposure ledger cannot be written, or was changed
        NoStore                   no run store where one was expected (store)
        SchemaTooNew              a file written by a newer Holdout (sqlite)
        RunBusy                   another process holds this run (runlock)
        NoPostgres                no PostgreSQL server to start here (localpg)
        EgressRefused             the egress gate refused a write (egress)
        CheckFailed               a check worker hit a bug: its type and place only (checks)

Not for people, so not in the tree: ProviderError (one failed call, recorded in its row by its
`callkinds.Kind`, a constant per kind, which also says whether it stops a provider or a model),
NotSent (a call the runner did not send), SealedError (code tried to serialize sealed text: a
bug), FailpointCrash (tests only)."""


class HoldoutError(Exception):
    """A problem the user can fix; the message says what and where."""


class ConfigError(HoldoutError):
    """A config, suite or pool file is wrong. The message names file, line and key path."""
