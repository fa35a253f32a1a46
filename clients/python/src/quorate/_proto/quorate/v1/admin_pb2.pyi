from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("snapshot_index",)
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    snapshot_index: int
    def __init__(self, snapshot_index: _Optional[int] = ...) -> None: ...

class CampaignRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CampaignResponse(_message.Message):
    __slots__ = ("leader_id", "term")
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    leader_id: int
    term: int
    def __init__(self, leader_id: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class StateDigestRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StateDigestResponse(_message.Message):
    __slots__ = ("applied_index", "digest", "tracked_keys")
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRACKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    applied_index: int
    digest: int
    tracked_keys: int
    def __init__(self, applied_index: _Optional[int] = ..., digest: _Optional[int] = ..., tracked_keys: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "addr", "voter", "peer_addr")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    VOTER_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDR_FIELD_NUMBER: _ClassVar[int]
    id: int
    addr: str
    voter: bool
    peer_addr: str
    def __init__(self, id: _Optional[int] = ..., addr: _Optional[str] = ..., voter: _Optional[bool] = ..., peer_addr: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("node_id", "role", "leader_id", "term", "commit_index", "applied_index", "members", "policy_version", "tracked_keys", "addr", "snapshot_index", "last_log_index", "cpu", "memory", "cluster_load", "multiplier", "drivers", "leases_held", "leased_decisions", "lease_grants", "leases_outstanding", "lease_grants_per_sec", "has_quorum", "raft_error")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_LOAD_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    DRIVERS_FIELD_NUMBER: _ClassVar[int]
    LEASES_HELD_FIELD_NUMBER: _ClassVar[int]
    LEASED_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    LEASE_GRANTS_FIELD_NUMBER: _ClassVar[int]
    LEASES_OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    LEASE_GRANTS_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    HAS_QUORUM_FIELD_NUMBER: _ClassVar[int]
    RAFT_ERROR_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    role: str
    leader_id: int
    term: int
    commit_index: int
    applied_index: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    policy_version: int
    tracked_keys: int
    addr: str
    snapshot_index: int
    last_log_index: int
    cpu: float
    memory: float
    cluster_load: float
    multiplier: float
    drivers: _containers.RepeatedCompositeFieldContainer[LoadSignal]
    leases_held: int
    leased_decisions: int
    lease_grants: int
    leases_outstanding: int
    lease_grants_per_sec: float
    has_quorum: bool
    raft_error: str
    def __init__(self, node_id: _Optional[int] = ..., role: _Optional[str] = ..., leader_id: _Optional[int] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., policy_version: _Optional[int] = ..., tracked_keys: _Optional[int] = ..., addr: _Optional[str] = ..., snapshot_index: _Optional[int] = ..., last_log_index: _Optional[int] = ..., cpu: _Optional[float] = ..., memory: _Optional[float] = ..., cluster_load: _Optional[float] = ..., multiplier: _Optional[float] = ..., drivers: _Optional[_Iterable[_Union[LoadSignal, _Mapping]]] = ..., leases_held: _Optional[int] = ..., leased_decisions: _Optional[int] = ..., lease_grants: _Optional[int] = ..., leases_outstanding: _Optional[int] = ..., lease_grants_per_sec: _Optional[float] = ..., has_quorum: _Optional[bool] = ..., raft_error: _Optional[str] = ...) -> None: ...

class LoadSignal(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class AddLearnerRequest(_message.Message):
    __slots__ = ("node_id", "addr", "peer_addr")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDR_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    addr: str
    peer_addr: str
    def __init__(self, node_id: _Optional[int] = ..., addr: _Optional[str] = ..., peer_addr: _Optional[str] = ...) -> None: ...

class ChangeMembershipRequest(_message.Message):
    __slots__ = ("voters",)
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, voters: _Optional[_Iterable[int]] = ...) -> None: ...

class MembershipResponse(_message.Message):
    __slots__ = ("members", "log_index")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    log_index: int
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., log_index: _Optional[int] = ...) -> None: ...

class GetPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPoliciesRequest(_message.Message):
    __slots__ = ("toml", "expected_version")
    TOML_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    toml: str
    expected_version: int
    def __init__(self, toml: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class PoliciesResponse(_message.Message):
    __slots__ = ("version", "toml")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TOML_FIELD_NUMBER: _ClassVar[int]
    version: int
    toml: str
    def __init__(self, version: _Optional[int] = ..., toml: _Optional[str] = ...) -> None: ...
