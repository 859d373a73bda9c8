"""Config of the nurse's page and the visit book (the ``page`` key of a ``ble`` source section).

```yaml
page:
  listen: "0.0.0.0:8088"          # host:port on the home's local network (port 0: any free port)
  language: ja                    # default language of the page (each browser keeps its own choice)
  schedule_file: schedule.yaml    # today's visits (see VISITS.md); relative to the config file
  keep_days: 7                    # forwarded/discarded readings, ended visits and the audit are kept this long
  nurses:
    - {id: n-01, name: "佐藤", pin_hash: "scrypt$16384$8$1$..."}   # python -m edge_agent.sources.ble.page_config
  login: {max_failures_per_nurse: 5, max_failures_per_address: 20, window_s: 300}
```
A PIN is never stored: only its scrypt hash (``hinode.security.api_secrets.hash_password``);
``python -m edge_agent.sources.ble.page_config`` asks for a PIN and prints the hash.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hinode.contract import Ident
from hinode.security.api_secrets import hash_password, is_password_hash


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NurseConfig(_Strict):
    id: Ident = Field(description="the nurse's id, e.g. n-01 (written to the gateway's local audit)")
    name: str = Field(min_length=1, max_length=64, description="shown on the login screen and the page header")
    pin_hash: str = Field(description="scrypt hash of the PIN (hinode.security.api_secrets.hash_password)")

    @field_validator("pin_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not is_password_hash(value):
            raise ValueError("expected a scrypt hash 'scrypt$N$r$p$salt$hash' (make one with "
                             "`python -m edge_agent.sources.ble.page_config`), never the PIN itself")
        return value


class LoginLimits(_Strict):
    """Failed PIN entries allowed within ``window_s``; beyond them the nurse (or the address) is
    locked out until the oldest failure leaves the window, right PIN or not."""

    max_failures_per_nurse: int = Field(default=5, ge=1)
    max_failures_per_address: int = Field(default=20, ge=1)
    window_s: float = Field(default=300.0, gt=0)


class PageConfig(_Strict):
    enabled: bool = Field(default=True, description="false: no page (readings then stay held on the gateway)")
    listen: str = Field(default="0.0.0.0:8088", description="host:port the page listens on")
    language: Literal["ja", "en"] = "ja"
    schedule_file: Path | None = Field(default=None, description="YAML file of the visits (see VISITS.md)")
    keep_days: int = Field(default=7, ge=1, le=365,
                           description="days forwarded/discarded readings, ended visits and audit rows are kept")
    session_ttl_s: float = Field(default=12 * 3600, gt=0, description="a login lasts this long")
    nurses: list[NurseConfig] = Field(default_factory=list)
    login: LoginLimits = Field(default_factory=LoginLimits)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected host:port (e.g. 0.0.0.0:8088), got {value!r}")
        return value

    @field_validator("schedule_file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        directory = (info.context or {}).get("config_dir")
        if value is not None and not value.is_absolute() and directory:
            return Path(directory) / value
        return value

    @field_validator("nurses")
    @classmethod
    def _unique(cls, nurses: list[NurseConfig]) -> list[NurseConfig]:
        seen: set[str] = set()
        for nurse in nurses:
            if nurse.id in seen:
                raise ValueError(f"nurse id {nurse.id!r} appears twice; ids must be unique")
            seen.add(nurse.id)
        return nurses

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def nurse(self, nurse_id: str) -> NurseConfig | None:
        return next((n for n in self.nurses if n.id == nurse_id), None)


def main() -> None:
    pin = getpass.getpass("PIN (4-12 digits): ")
    if not (pin.isdigit() and 4 <= len(pin) <= 12) or pin != getpass.getpass("again: "):
        raise SystemExit("not a PIN of 4-12 digits, or the two entries differ")
    print(hash_password(pin))


if __name__ == "__main__":
    main()
