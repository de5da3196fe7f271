"""Vein-to-vein: a therapy case from referral to follow-up, the chain of identity and custody of its
cells, the calendar, the labelled dose, and e-mail notifications of due steps.

Modules (pure logic first, then what touches the database, mail or the terminal):

* :mod:`~actnav.logistics.lifecycle`: the steps of a case and what each transition needs.
* :mod:`~actnav.logistics.din`: ISBT 128-style donation identification numbers (ISO/IEC 7064
  MOD 37-2 check character).
* :mod:`~actnav.logistics.custody`: custody events and the hash chain of their log.
* :mod:`~actnav.logistics.bedside`: the bedside identity check (identifiers are never stored).
* :mod:`~actnav.logistics.dose`: the labelled dose and the certificate check.
* :mod:`~actnav.logistics.schedule`: the calendar, recomputed on slips, with label-window conflicts.
* :mod:`~actnav.logistics.data`: the logistics data file (turnaround times, programme defaults).
* :mod:`~actnav.logistics.service`: the API the CLI and the web pages call.
* :mod:`~actnav.logistics.notify`: SMTP notifications of due steps.
* :mod:`~actnav.logistics.cli`: ``actnav case ...`` and ``actnav chain ...``.

Tables: :mod:`actnav.store.logistics`. Documentation: ``docs/vein-to-vein.md``.
"""
