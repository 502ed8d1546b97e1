"""Users and API tokens in the metadata database (all three backends): names are
unique, tokens are kept only as hashes, expire, are revoked, and go with their user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from airloop.store.runs import Store
from airloop.store.schema import api_token
from airloop.store.users import UserError, UserStore, token_hash, utcnow


@pytest.fixture
def users(api_store: Store) -> UserStore:
    return UserStore(api_store.engine)


async def test_users_are_created_listed_changed_and_deleted(users: UserStore) -> None:
    created = await users.create_user("alice", "hash-a", "admin")
    await users.create_user("bob", "hash-b", "viewer")
    assert created.is_active
    assert created.role == "admin"
    assert created.last_login is None
    assert [u.username for u in await users.users()] == ["alice", "bob"]
    with pytest.raises(UserError, match="user 'alice' already exists"):
        await users.create_user("alice", "other", "viewer")
    with pytest.raises(UserError, match="role 'root' is not one of: viewer, admin"):
        await users.create_user("carol", "hash", "root")
    with pytest.raises(UserError, match="username ' x' is not valid"):
        await users.create_user(" x", "hash", "viewer")

    assert await users.set_password("bob", "hash-b2")
    assert await users.set_role("bob", "admin")
    await users.record_login("bob")
    bob = await users.get_user("bob")
    assert bob is not None
    assert (bob.password_hash, bob.role) == ("hash-b2", "admin")
    assert bob.last_login is not None
    assert not await users.set_password("nobody", "hash")

    assert await users.delete_user("alice")
    assert not await users.delete_user("alice")
    assert await users.get_user("alice") is None


async def test_a_token_is_stored_as_its_hash_and_finds_its_user(
    users: UserStore, api_store: Store
) -> None:
    await users.create_user("bob", "hash-b", "viewer")
    secret, record = await users.create_token("bob", "ci")
    assert len(secret) >= 40
    assert record.username == "bob"
    assert record.expires_at is None
    async with api_store.engine.connect() as conn:
        stored = (await conn.execute(select(api_token.c.token_hash))).scalars().all()
    assert stored == [token_hash(secret)]
    assert secret not in stored[0]

    found = await users.user_for_token(secret)
    assert found is not None
    assert found[0].username == "bob"
    assert found[1].name == "ci"
    assert await users.user_for_token(secret + "x") is None
    with pytest.raises(UserError, match="user 'bob' already has a token named 'ci'"):
        await users.create_token("bob", "ci")
    with pytest.raises(UserError, match="no user 'nobody'"):
        await users.create_token("nobody", "ci")


async def test_last_used_is_written_at_most_once_a_minute(users: UserStore) -> None:
    await users.create_user("bob", "hash-b", "viewer")
    secret, _ = await users.create_token("bob", "ci")
    await users.user_for_token(secret)
    [first] = await users.tokens("bob")
    assert first.last_used_at is not None
    await users.user_for_token(secret)
    [second] = await users.tokens("bob")
    assert second.last_used_at == first.last_used_at


async def test_expired_revoked_and_orphaned_tokens_find_nobody(users: UserStore) -> None:
    await users.create_user("bob", "hash-b", "viewer")
    expired, _ = await users.create_token("bob", "old", expires_at=utcnow() - timedelta(seconds=5))
    revoked, _ = await users.create_token("bob", "gone")
    kept, _ = await users.create_token("bob", "kept", expires_at=utcnow() + timedelta(days=1))
    assert await users.user_for_token(expired) is None
    assert await users.revoke_token("bob", "gone")
    assert not await users.revoke_token("bob", "gone")
    assert await users.user_for_token(revoked) is None
    assert await users.user_for_token(kept) is not None

    await users.set_active("bob", False)
    assert await users.user_for_token(kept) is None
    await users.set_active("bob", True)

    await users.delete_user("bob")
    assert await users.tokens() == []
    assert await users.user_for_token(kept) is None
