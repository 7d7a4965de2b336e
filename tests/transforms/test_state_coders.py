"""State coders: explicit versioned encodings of what the stateful steps keep, readable by the
next release, and the blobs of the release before (Beam's PickleCoder) still read."""

import pickle

import pytest

from transforms.alert_rules import OrgState
from transforms.dedupe import Version, _DropRepeats
from transforms.raise_alerts import _ApplyNoveltyRulesFn
from transforms.state_coders import (
    OrgStateCoder,
    SeenCoder,
    StateFormatError,
    decode_org_state,
    decode_seen,
    encode_org_state,
    encode_seen,
)

STATE = OrgState(last_seen=1772445600.25, first_seen=1772400000.0, last_surge=None,
                 stories={"s1": 1772400000.0, "сюжет": 1772445600.25}, topic_stories={"protest|s1": 1772400000.0},
                 hours={492333: 1, 492345: 2})

# Written by the release before this format (commit 53cb50a): Beam's PickleCoder of
# OrgState(last_seen=1.5, first_seen=1.0, stories={"s1": 1.0}, topic_stories={"protest|s1": 1.0},
# hours={0: 1}) and of dedupe's (Version(None, fetched, digest), expiry).
PICKLED_ORG_STATE = bytes.fromhex(
    "800595be000000000000008c167472616e73666f726d732e616c6572745f72756c6573948c084f726753746174659493942981944e7d"
    "94288c096c6173745f7365656e94473ff80000000000008c0a66697273745f7365656e94473ff00000000000008c0a6c6173745f737572"
    "6765944e8c0773746f72696573947d948c02733194473ff0000000000000738c0d746f7069635f73746f72696573947d948c0a70726f74"
    "6573747c733194473ff0000000000000738c05686f757273947d944b004b0173758694622e"
)
PICKLED_SEEN = bytes.fromhex(
    "80059581000000000000008c117472616e73666f726d732e646564757065948c0756657273696f6e9493942981945d94288c14323032"
    "362d30332d30315431303a30303a30305a948c14323032362d30332d30315431303a30303a33305a948c206162616261626162616261"
    "6261626162616261626162616261626162616261629465624a15cd5b0786942e"
)

# Format 1 as this release writes it: the next release must still read these.
FORMAT_1_ORG_STATE = (
    b'\x01{"last_seen":1772445600.25,"first_seen":1772400000.0,"last_surge":null,"stories":{"s1":1772400000.0,'
    b'"\xd1\x81\xd1\x8e\xd0\xb6\xd0\xb5\xd1\x82":1772445600.25},"topic_stories":{"protest|s1":1772400000.0},'
    b'"hours":{"492333":1,"492345":2}}'
)
FORMAT_1_SEEN = b'\x01{"version":[null,"2026-03-01T10:00:30Z","abababababababababababababababab"],"expires":1772445600000000}'


def test_org_state_round_trips_exactly():
    assert decode_org_state(encode_org_state(STATE)) == STATE
    assert decode_org_state(encode_org_state(OrgState())) == OrgState()


def test_a_novelty_state_blob_of_the_previous_release_is_read():
    assert decode_org_state(PICKLED_ORG_STATE) == OrgState(
        last_seen=1.5, first_seen=1.0, stories={"s1": 1.0}, topic_stories={"protest|s1": 1.0}, hours={0: 1})


def test_a_dedupe_state_blob_of_the_previous_release_is_read():
    assert decode_seen(PICKLED_SEEN) == (
        Version("2026-03-01T10:00:00Z", "2026-03-01T10:00:30Z", "ab" * 16), 123456789)


def test_format_1_blobs_stay_readable():
    assert decode_org_state(FORMAT_1_ORG_STATE) == STATE
    assert decode_seen(FORMAT_1_SEEN) == (Version(None, "2026-03-01T10:00:30Z", "ab" * 16), 1772445600000000)
    assert encode_org_state(STATE)[:1] == b"\x01" and encode_seen((None, 5))[:1] == b"\x01"
    assert decode_seen(encode_seen((None, 5))) == (None, 5)


def test_no_pickled_class_is_written():
    for blob in (encode_org_state(STATE), encode_seen((Version(None, "f", "d"), 1))):
        assert b"transforms" not in blob and not blob.startswith(b"\x80")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("blob, reason", [
    (b"", "empty"),
    (b"\x07{}", "format 7"),
    (pickle.dumps(Evil(), protocol=5), "builtins.print"),
    (pickle.dumps(Version(None, "f", "d"), protocol=5), "expected OrgState"),
])
def test_an_unknown_or_foreign_blob_is_an_error_not_an_empty_state(blob, reason):
    with pytest.raises(StateFormatError, match=reason):
        decode_org_state(blob)


def test_the_stateful_steps_use_the_versioned_coders():
    assert isinstance(_ApplyNoveltyRulesFn.STATE.coder, OrgStateCoder)
    assert isinstance(_DropRepeats.SEEN.coder, SeenCoder)
    assert OrgStateCoder().decode(OrgStateCoder().encode(STATE)) == STATE
