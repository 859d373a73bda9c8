"""``domains.vitals.alerts`` in cloud.yaml: the alert job, the webhooks and the default rules.

```yaml
domains:
  vitals:
    alerts:
      enabled: true
      lookback_days: 7            # readings this old still alert (a visit synchronised late)
      webhook_timeout_s: 5
      webhook_max_attempts: 6     # then the delivery is recorded as failed (never dropped silently)
      webhook_retry_initial_s: 30 # back-off between attempts, jittered doubling (hinode.backoff) up to webhook_retry_max_s
      webhook_retry_max_s: 3600
      webhook_secret_file: /etc/hinode/alert-webhook.key   # then every webhook is signed (webhooks.py)
      rules:                      # defaults for every patient; a doctor overrides them per patient
        spo2_low: {threshold: 92}
        weight_gain: {enabled: false}
```
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.domains.vitals.alert_rules import DEFAULT_RULES, AlertRule, RuleChange, apply_changes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleDefault(_Strict):
    threshold: float | None = Field(default=None, description="in the metric's UCUM unit (a gain rule: its gain)")
    enabled: bool | None = None


class AlertsConfig(_Strict):
    enabled: bool = Field(default=True, description="run the vitals.alerts job")
    lookback_days: float = Field(default=7.0, gt=0, le=60, description="each run evaluates readings this far back, "
                                 "so readings that reach the cloud late (an offline visit) still alert")
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=6, ge=1, le=100, description="attempts per delivery before it is "
                                      "recorded as failed")
    webhook_retry_initial_s: float = Field(default=30.0, ge=0)
    webhook_retry_max_s: float = Field(default=3600.0, ge=0)
    webhook_secret_file: Path | None = Field(default=None, description="a file holding the HMAC-SHA256 key; every "
                                             "webhook then carries X-Hinode-Timestamp and X-Hinode-Signature "
                                             "(sha256=<hex> over '<timestamp>.<body>')")
    rules: dict[str, RuleDefault] = Field(default_factory=dict, description="changes to the default rules "
                                          f"({', '.join(DEFAULT_RULES)})")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: dict[str, RuleDefault]) -> dict[str, RuleDefault]:
        unknown = sorted(set(rules) - set(DEFAULT_RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; expected one of {', '.join(DEFAULT_RULES)}")
        return rules

    @field_validator("webhook_secret_file")
    @classmethod
    def _readable_key(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                if not path.read_bytes().strip():
                    raise ValueError(f"{path} is empty: expected the webhook signing key")
            except OSError as exc:
                raise ValueError(f"expected a readable file holding the webhook signing key ({path}: {exc.strerror})") \
                    from None
        return path

    def webhook_secret(self) -> bytes | None:
        return self.webhook_secret_file.read_bytes().strip() if self.webhook_secret_file else None

    @model_validator(mode="after")
    def _retry_ordered(self) -> "AlertsConfig":
        if self.webhook_retry_max_s < self.webhook_retry_initial_s:
            raise ValueError(f"webhook_retry_max_s ({self.webhook_retry_max_s}) must be at least "
                             f"webhook_retry_initial_s ({self.webhook_retry_initial_s})")
        return self

    def default_rules(self) -> dict[str, AlertRule]:
        """The built-in rules with this section's changes: what a patient without overrides gets."""
        return apply_changes(DEFAULT_RULES, {name: RuleChange(d.threshold, d.enabled) for name, d in self.rules.items()})

