"""Email addresses as notifier compares them: the suppression list, bounces, confirmations.

One spelling per address, `normal_address`, so that an address suppressed, bounced or
counted one way is found again however a subscriber, a mail server or a DSN writes it.
"""

from __future__ import annotations


def normal_address(address: str) -> str:
    """`address` as it is stored and compared: surrounding whitespace removed (what
    `str.strip` removes) and the whole address lower-cased (`str.lower`), the local part
    too, though a mail server may tell ``Ann@`` from ``ann@``: notifier treats them as one
    mailbox.

    Nothing else changes: no validation, no parsing (angle brackets and display names
    stay), inner whitespace, dots and ``+tags`` stay, no case folding beyond `str.lower`
    (``ß`` stays ``ß``), no IDNA or Unicode normalisation, no length limit. Idempotent.
    """
    return address.strip().lower()
