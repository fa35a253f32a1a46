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
    __slots__ = ("descriptors", "cost", "peek")
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    PEEK_FIELD_NUMBER: _ClassVar[int]
    descriptors: _containers.RepeatedCompositeFieldContainer[Descriptor]
    cost: int
    peek: bool
    def __init__(self, descriptors: _Optional[_Iterable[_Union[Descriptor, _Mapping]]] = ..., cost: _Optional[int] = ..., peek: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("allowed", "overall", "limits", "degraded", "policy_version")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    overall: LimitStatus
    limits: _containers.RepeatedCompositeFieldContainer[LimitStatus]
    degraded: bool
    policy_version: int
    def __init__(self, allowed: _Optional[bool] = ..., overall: _Optional[_Union[LimitStatus, _Mapping]] = ..., limits: _Optional[_Iterable[_Union[LimitStatus, _Mapping]]] = ..., degraded: _Optional[bool] = ..., policy_version: _Optional[int] = ...) -> None: ...

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
