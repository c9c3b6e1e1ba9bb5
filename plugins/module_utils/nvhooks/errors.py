# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors that name the thing at fault and the reason."""


class NetvirtError(Exception):
    """Base error. ``where`` names the field, file, guest or port at fault."""

    def __init__(self, message, where=None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class XmlError(NetvirtError):
    """A domain or hook XML document that is malformed or unsafe."""


class PolicyError(NetvirtError):
    """Invalid policy (host policy file, guest metadata, module arguments)."""


class KernelError(NetvirtError):
    """The kernel lacks a capability or refused a change."""


class UnitError(PolicyError):
    """A rate or size that cannot be converted: a policy value at fault, wherever it was written."""
