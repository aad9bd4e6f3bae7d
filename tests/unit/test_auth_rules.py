"""Password rules, hashing and the guard, without a database."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from app.auth import services
from app.auth.controllers import safe_next
from app.auth.guards import ADMIN, authorize

# --------------------------------------------------------------------------- passwords


@pytest.mark.parametrize(
    "password",
    [
        "a quiet tuesday morning",
        "x7#kQ!pz2m",
        "ten chars!",
        "çãéíóú àèì",
        "ab c" * 32,  # 128 characters
    ],
)
def test_long_enough_uncommon_passwords_are_accepted(password: str) -> None:
    assert services.password_problem(password, "rita") is None


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("", "at least 10"),
        ("nine char", "at least 10"),
        ("x" * 129, "at most 128"),
        ("password123", "too common"),
        ("PASSWORD123", "too common"),  # the list is checked without regard to case
        ("1234567890", "too common"),
        ("qwertyuiop", "too common"),
        ("aaaaaaaaaaaa", "too common"),
        ("abababababab", "too common"),
        ("rita-at-the-desk", "too common"),  # contains the username
    ],
)
def test_short_long_common_or_guessable_passwords_are_refused(password: str, why: str) -> None:
    problem = services.password_problem(password, "rita")
    assert problem is not None and why in problem


def test_no_composition_rules() -> None:
    """Length beats character classes: all lower case, no digits, is fine."""
    assert services.password_problem("correct horse battery staple", "rita") is None


def test_hashes_are_argon2id_and_old_parameters_need_a_rehash() -> None:
    """(The tests run with cheap parameters; the live-server test checks the real ones.)"""
    digest = services.hash_password("a quiet tuesday morning")
    assert digest.startswith("$argon2id$")
    assert services.hasher.type is Type.ID
    assert not services.hasher.check_needs_rehash(digest)
    older = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=2).hash("x")
    assert services.hasher.check_needs_rehash(older)


def test_the_dummy_hash_for_unknown_users_costs_the_same() -> None:
    real = services.hash_password("anything at all")
    assert services._DUMMY_HASH.rsplit("$", 2)[0] == real.rsplit("$", 2)[0]


def test_a_user_never_shows_their_hash() -> None:
    from app.auth.models import User

    user = User(username="rita", role="reception", password_hash="$argon2id$secret")
    assert "argon2" not in repr(user)


def test_tokens_are_stored_as_sha256() -> None:
    assert services.token_hash("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# --------------------------------------------------------------------------- redirects after login


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/clients/4", "/clients/4"),
        ("/admin/audit?page=2", "/admin/audit?page=2"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_login_only_redirects_to_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


# --------------------------------------------------------------------------- the guard


def connection(user: Any, method: str = "GET") -> Any:
    return SimpleNamespace(scope={"user": user, "method": method})


def handler(**opt: Any) -> Any:
    return SimpleNamespace(opt=opt)


def user(role: str) -> Any:
    return SimpleNamespace(role=role)


async def test_public_routes_let_anyone_in() -> None:
    await authorize(connection(None, "POST"), handler(public=True))


async def test_everything_else_needs_a_login() -> None:
    with pytest.raises(NotAuthorizedException):
        await authorize(connection(None), handler())


@pytest.mark.parametrize("role", ["reception", "accountant"])
async def test_admin_routes_refuse_other_roles(role: str) -> None:
    with pytest.raises(PermissionDeniedException):
        await authorize(connection(user(role)), handler(roles=ADMIN))
    await authorize(connection(user("admin")), handler(roles=ADMIN))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_the_accountant_changes_nothing_unless_it_is_their_own(method: str) -> None:
    with pytest.raises(PermissionDeniedException):
        await authorize(connection(user("accountant"), method), handler())
    await authorize(connection(user("accountant"), method), handler(self_service=True))
    await authorize(connection(user("reception"), method), handler())


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_the_accountant_reads_everything(method: str) -> None:
    await authorize(connection(user("accountant"), method), handler())
