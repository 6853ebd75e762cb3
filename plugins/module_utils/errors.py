# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type of the core: the module turns it into fail_json."""

from __future__ import annotations


class CnmError(Exception):
    """A user-facing failure; the message names the option, the value and the rule."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


class Gone(CnmError):
    """The object a step works on no longer exists (deleted with its sandbox, by hand, or by an earlier step)."""


def option_error(option: str, value: object, rule: str) -> CnmError:
    """Build the standard message: ``option 'gateway': 10.9.9.1 is outside subnet 10.0.0.0/24``."""
    return CnmError("option '%s': %s %s" % (option, value, rule), option=option)
