"""``mlvault namespace create NS --own-keyring``: give a deeper namespace a keyring of its own.

Then a read grant on ``NS/*`` is enforced by keys: only slots on that keyring open what is pushed
under NS (:mod:`vault.keys.subtrees` says how pushes find it and why a catalog writer cannot make
them fall back to the top-level keyring).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import output
from ..app import app, global_options, handle_errors, open_vault

namespace_app = typer.Typer(help="Namespaces: give a subtree a keyring of its own.", no_args_is_help=True)
app.add_typer(namespace_app, name="namespace")


@namespace_app.command("create")
@handle_errors
@global_options
def namespace_create(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="A namespace below the top level, e.g. team/secret.")],
    own_keyring: Annotated[
        bool, typer.Option("--own-keyring", help="Give it a keyring of its own (required).")
    ] = False,
) -> None:
    """Create NAMESPACE with a keyring of its own (before anything is pushed under it)."""
    from vault.errors import UsageError
    from vault.keys.subtrees import check_namespace, create_subtree

    check_namespace(namespace)
    if not own_keyring:
        raise UsageError("a namespace needs creating only to get a keyring of its own: add --own-keyring")
    with open_vault(ctx) as v:
        v.gate.require_admin("create namespaces")  # exit 15 before the owner key is unlocked
        ring = create_subtree(v.keys, v.backend, v.catalog, namespace)
    output.out.print(
        f"namespace {namespace} has keyring {ring}: pushes under it are sealed with it, and only its slots "
        f"open them (`mlvault grant NAME '{namespace}/*' read` adds one)",
        markup=False,
    )
