from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Descriptor(_message.Message):
    __slots__ = ("dimension", "value", "policy")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    dimension: str
    value: str
    policy: str
    def __init__(self, dimension: _Optional[str] = ..., value: _Optional[str] = ..., policy: _Optional[str] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("descriptors", "cost", "peek", "lease")
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    PEEK_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    descriptors: _containers.RepeatedCompositeFieldContainer[Descriptor]
    cost: int
    peek: bool
    lease: LeaseRequest
    def __init__(self, descriptors: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., cost: _Optional[int] = ..., peek: _Optional[bool] = ..., lease: _Optional[_Union[LeaseRequest, _Mapping]] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("holder", "units", "returns")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    holder: int
    units: int
    returns: _containers.RepeatedCompositeFieldContainer[LeaseReturn]
    def __init__(self, holder: _Optional[int] = ..., units: _Optional[int] = ..., returns: _Optional[_Iterable[_Union[LeaseReturn, _Mapping]]] = ...) -> None: ...

class LeaseGrant(_message.Message):
    __slots__ = ("lease_id", "descriptor", "units", "valid_for_ns", "status")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_NS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    descriptor: int
    units: int
    valid_for_ns: int
    status: LimitStatus
    def __init__(self, lease_id: _Optional[int] = ..., descriptor: _Optional[int] = ..., units: _Optional[int] = ..., valid_for_ns: _Optional[int] = ..., status: _Optional[_Union[LimitStatus, _Mapping]] = ...) -> None: ...

class ReturnLeasesRequest(_message.Message):
    __slots__ = ("holder", "returns")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    holder: int
    returns: _containers.RepeatedCompositeFieldContainer[LeaseReturn]
    def __init__(self, holder: _Optional[int] = ..., returns: _Optional[_Iterable[_Union[LeaseReturn, _Mapping]]] = ...) -> None: ...

class LeaseReturn(_message.Message):
    __slots__ = ("lease_id", "unused")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    UNUSED_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    unused: int
    def __init__(self, lease_id: _Optional[int] = ..., unused: _Optional[int] = ...) -> None: ...

class ReturnLeasesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LimitStatus(_message.Message):
    __slots__ = ("policy", "key", "allowed", "limit", "base_limit", "remaining", "reset_after_ns", "retry_after_ns", "window_ns")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BASE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_AFTER_NS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_NS_FIELD_NUMBER: _ClassVar[int]
    policy: str
    key: str
    allowed: bool
    limit: int
    base_limit: int
    remaining: int
    reset_after_ns: int
    retry_after_ns: int
    window_ns: int
    def __init__(self, policy: _Optional[str] = ..., key: _Optional[str] = ..., allowed: _Optional[bool] = ..., limit: _Optional[int] = ..., base_limit: _Optional[int] = ..., remaining: _Optional[int] = ..., reset_after_ns: _Optional[int] = ..., retry_after_ns: _Optional[int] = ..., window_ns: _Optional[int] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "overall", "limits", "degraded", "policy_version", "leased", "grants")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    overall: LimitStatus
    limits: _containers.RepeatedCompositeFieldContainer[LimitStatus]
    degraded: bool
    policy_version: int
    leased: bool
    grants: _containers.RepeatedCompositeFieldContainer[LeaseGrant]
    def __init__(self, allowed: _Optional[bool] = ..., overall: _Optional[_Union[LimitStatus, _Mapping]] = ..., limits: _Optional[_Iterable[_Union[LimitStatus, _Mapping]]] = ..., degraded: _Optional[bool] = ..., policy_version: _Optional[int] = ..., leased: _Optional[bool] = ..., grants: _Optional[_Iterable[_Union[LeaseGrant, _Mapping]]] = ...) -> None: ...

class CheckBatchRequest(_message.Message):
    __slots__ = ("checks",)
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[CheckRequest]
    def __init__(self, checks: _Optional[_Iterable[_Union[CheckRequest, _Mapping]]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("decision", "error")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    decision: CheckResponse
    error: ItemError
    def __init__(self, decision: _Optional[_Union[CheckResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class CheckBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CheckResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ...) -> None: ...

class CheckStreamRequest(_message.Message):
    __slots__ = ("id", "checks")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    id: int
    checks: _containers.RepeatedCompositeFieldContainer[CheckRequest]
    def __init__(self, id: _Optional[int] = ..., checks: _Optional[_Iterable[_Union[CheckRequest, _Mapping]]] = ...) -> None: ...

class CheckStreamResponse(_message.Message):
    __slots__ = ("id", "results", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    results: _containers.RepeatedCompositeFieldContainer[CheckResult]
    error: ItemError
    def __init__(self, id: _Optional[int] = ..., results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("descriptors", "amount")
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    descriptors: _containers.RepeatedCompositeFieldContainer[Descriptor]
    amount: int
    def __init__(self, descriptors: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., amount: _Optional[int] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportLoadRequest(_message.Message):
    __slots__ = ("name", "value", "ttl_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    ttl_ms: int
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class ReportLoadResponse(_message.Message):
    __slots__ = ("load",)
    LOAD_FIELD_NUMBER: _ClassVar[int]
    load: float
    def __init__(self, load: _Optional[float] = ...) -> None: ...
