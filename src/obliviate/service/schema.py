"""Request bodies of the deletion service, in the vocabulary of OpenDSR (github.com/opengdpr/OpenDSR).

OpenDSR's request object names ``subject_request_id`` (the controller's id of the request: here also the
idempotency key), ``subject_request_type`` (only ``erasure`` is served), ``regulation``, ``submitted_time``,
``subject_identities`` (``identity_type``, ``identity_value``, ``identity_format``) and ``api_version``.
Obliviate adds ``sample_ids`` for controllers that know the training sample ids themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

MAX_IDENTITIES = 1000
MAX_SAMPLE_IDS = 100_000


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identity_type: str = Field(min_length=1, max_length=64, description="e.g. controller_customer_id, email")
    identity_value: str = Field(min_length=1, max_length=512, description="the subject key, in clear")
    identity_format: Literal["raw"] = Field("raw", description="only raw: stored hashes are keyed by the processor")


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_request_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                                    description="the controller's request id; reusing it with another body is a 409")
    subject_request_type: Literal["erasure"]
    regulation: Literal["gdpr", "ccpa"]
    submitted_time: datetime
    subject_identities: list[Identity] = Field(default_factory=list, max_length=MAX_IDENTITIES)
    sample_ids: list[StrictInt] = Field(default_factory=list, max_length=MAX_SAMPLE_IDS)
    api_version: str | None = Field(None, max_length=16)
    status_callback_urls: list[str] = Field(default_factory=list, max_length=0,
                                            description="not supported: poll GET /requests/{id}")

    @field_validator("submitted_time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("submitted_time needs a time zone, e.g. 2026-12-01T10:00:00Z")
        return v

    @field_validator("sample_ids")
    @classmethod
    def _non_negative(cls, v: list[int]) -> list[int]:
        if any(i < 0 for i in v):
            raise ValueError("sample ids are non-negative integers")
        return v

    @model_validator(mode="after")
    def _something(self) -> ErasureRequest:
        if not self.subject_identities and not self.sample_ids:
            raise ValueError("name what to erase: subject_identities or sample_ids (or both)")
        return self
