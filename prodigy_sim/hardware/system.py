"""Systems of several Prodigy sockets: sockets in a node, nodes on a network, and their links.

A :class:`SystemConfig` is a frozen value like :class:`~prodigy_sim.hardware.ChipConfig`: every
field typed, with its unit in its name, a constraint and a description. The sockets of a node are
joined by point-to-point links made of PCIe 5.0 lanes (T16128: 64 lanes per socket; 2- and
4-socket systems are published); nodes are joined by 400G Ethernet NICs through a switch. What
Tachyum has not published (the lanes of a socket-to-socket link, its latency, the NICs of a node,
the switch) is a named assumption in the presets; ``system_preset_sources(name)`` returns the
source of every field.

Derived, never stored: link bandwidths (lanes x 32 GT/s x 128/130 / 8), socket and node counts,
total DDR capacity. Bandwidths are per direction, in bytes per second; latencies in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.hardware._base import Block
from prodigy_sim.hardware.chip import ChipConfig
from prodigy_sim.hardware.presets import Cited, load_preset

__all__ = ["PCIE5_LANE_BYTES_PER_S", "SystemConfig", "DEFAULT_SYSTEM", "SYSTEM_PRESETS",
           "system_preset_names", "load_system", "system_preset_sources",
           "system_preset_description"]

PCIE5_LANE_BYTES_PER_S = 32e9 * 128 / 130 / 8
"""One PCIe 5.0 lane, one direction: 32 GT/s with 128b/130b encoding = 3.938 GB/s (PCIe Base
Specification 5.0). Packet (TLP/DLLP) overheads are not subtracted."""


class SystemConfig(Block):
    """Sockets, nodes and the links between them (bandwidths per direction)."""

    name: str = Field("custom", min_length=1, description="Name of this system.")
    chip: ChipConfig = Field(default_factory=ChipConfig,
                             description="The socket (a chip preset name or a ChipConfig).")
    sockets_per_node: int = Field(1, ge=1, le=16, description="Sockets in one node (count).")
    nodes: int = Field(1, ge=1, description="Nodes in the system (count).")
    pcie_lanes_per_socket: int = Field(64, ge=1, description="PCIe 5.0 lanes of one socket "
                                       "(lanes), shared by socket links and NICs.")
    socket_link_lanes: int = Field(16, ge=1, description="PCIe 5.0 lanes of one "
                                   "socket-to-socket link (lanes).")
    socket_link_latency_s: float = Field(1e-6, gt=0, description="One-way latency of a "
                                         "socket-to-socket message, software included (s).")
    socket_topology: Literal["fully_connected"] = Field(
        "fully_connected", description="How the sockets of a node are linked: every pair by its "
                                       "own link.")
    nics_per_node: int = Field(1, ge=1, description="Network interfaces of one node (count); "
                               "each socket uses the NICs on its own lanes.")
    nic_bandwidth_bits_per_s: float = Field(400e9, gt=0, description="Line rate of one NIC, one "
                                            "direction (bits/s).")
    nic_lanes: int = Field(16, ge=1, description="PCIe 5.0 lanes feeding one NIC (lanes).")
    node_link_latency_s: float = Field(5e-6, gt=0, description="One-way latency of a "
                                       "node-to-node message through the switch (s).")
    node_topology: Literal["switched"] = Field(
        "switched", description="Nodes hang off a non-blocking Ethernet switch fabric.")

    @field_validator("chip", mode="before")
    @classmethod
    def _chip_by_name(cls, value: Any) -> Any:
        return load_preset(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lane_budget(self) -> SystemConfig:
        nic_per_socket = math.ceil(self.nics_per_node / self.sockets_per_node)
        used = ((self.sockets_per_node - 1) * self.socket_link_lanes
                + nic_per_socket * self.nic_lanes)
        if self.nodes == 1 and self.sockets_per_node == 1:
            return self
        if used > self.pcie_lanes_per_socket:
            raise ValueError(
                f"a socket needs {self.sockets_per_node - 1} x 'socket_link_lanes' "
                f"({self.socket_link_lanes}) + {nic_per_socket} x 'nic_lanes' ({self.nic_lanes}) "
                f"= {used} PCIe lanes but has 'pcie_lanes_per_socket' = "
                f"{self.pcie_lanes_per_socket}")
        if self.nics_per_node > self.sockets_per_node and \
                self.nics_per_node % self.sockets_per_node:
            raise ValueError(f"'nics_per_node' ({self.nics_per_node}) must be at most, or a "
                             f"multiple of, 'sockets_per_node' ({self.sockets_per_node})")
        return self

    # --- derived -------------------------------------------------------------------------------

    @property
    def sockets(self) -> int:
        """Sockets in the system: ``sockets_per_node * nodes``."""
        return self.sockets_per_node * self.nodes

    @property
    def capacity_bytes(self) -> int:
        """DDR capacity of all sockets (bytes)."""
        return self.sockets * self.chip.memory.capacity_bytes

    @property
    def socket_link_bandwidth_bytes_per_s(self) -> float:
        """One socket-to-socket link, one direction: ``lanes * 3.938 GB/s`` (bytes/s)."""
        return self.socket_link_lanes * PCIE5_LANE_BYTES_PER_S

    @property
    def nic_bandwidth_bytes_per_s(self) -> float:
        """One NIC, one direction: its line rate, capped by its PCIe lanes (bytes/s)."""
        return min(self.nic_bandwidth_bits_per_s / 8, self.nic_lanes * PCIE5_LANE_BYTES_PER_S)

    @property
    def node_bandwidth_bytes_per_s(self) -> float:
        """All NICs of a node, one direction (bytes/s)."""
        return self.nics_per_node * self.nic_bandwidth_bytes_per_s

    @property
    def socket_network_bandwidth_bytes_per_s(self) -> float:
        """Network bandwidth one socket gets when every socket of its node sends at once: the
        node's NICs shared evenly (bytes/s)."""
        return self.node_bandwidth_bytes_per_s / self.sockets_per_node

    def derived(self) -> dict[str, float | int]:
        """The headline derived figures, keyed by name with the unit in the key."""
        return {
            "sockets": self.sockets,
            "capacity_bytes": self.capacity_bytes,
            "socket_link_bandwidth_bytes_per_s": self.socket_link_bandwidth_bytes_per_s,
            "nic_bandwidth_bytes_per_s": self.nic_bandwidth_bytes_per_s,
            "node_bandwidth_bytes_per_s": self.node_bandwidth_bytes_per_s,
            "socket_network_bandwidth_bytes_per_s": self.socket_network_bandwidth_bytes_per_s,
            "peak_ddr_bandwidth_bytes_per_s":
                self.sockets * self.chip.peak_ddr_bandwidth_bytes_per_s,
        }


# --- presets ---------------------------------------------------------------------------------

T16128_IO = ("T16128 spec: 64 PCIe 5.0 lanes (gigazine 2022-06-15; tomshw.it 2022-06; "
             "appuals)")
MULTI_SOCKET = "T16128 spec: 2-socket and 4-socket multiprocessor support (gigazine 2022-06-15)"
RACK = ("Tachyum rack reference design: 88 4-socket 1U servers per 48U rack, 352 processors "
        "(eeNews Europe, 'Tachyum shows design of 20 ExaFlop supercomputer'; a Prodigy 2 design)")
ETHERNET = ("400G Ethernet between nodes (Tachyum white paper as quoted in issue 16; the text "
            "was not found in the stored copies)")
LINK_LANES = ("assumption: x16 per socket pair - a 4-socket node's three peer links (48 lanes) "
              "plus one x16 NIC fill the 64 lanes; link protocol not public")
LINK_LATENCY = "assumption: ~1 us one way over PCIe with software (not public)"
NIC_COUNT = "assumption: one 400G NIC per socket, on x16 PCIe 5.0 lanes"
NET_LATENCY = "assumption: ~5 us one way, RDMA over Ethernet through one switch (not public)"
SWITCH = "assumption: non-blocking switch fabric"
BRAIN = ("256 PB DDR5 for a 100-quadrillion-parameter model (Tachyum white paper as quoted in "
         "issue 16); 'hundreds of petabytes of DDR5' (The Register 2023-10-16)")


def _node(name: str, sockets: int, nodes: int, nodes_source: str, sockets_source: str) -> dict:
    return {
        "name": Cited(name, "preset name"),
        "chip": Cited("prodigy-t16128", "chip preset (its fields cite their own sources)"),
        "sockets_per_node": Cited(sockets, sockets_source),
        "nodes": Cited(nodes, nodes_source),
        "pcie_lanes_per_socket": Cited(64, T16128_IO),
        "socket_link_lanes": Cited(16, LINK_LANES),
        "socket_link_latency_s": Cited(1e-6, LINK_LATENCY),
        "socket_topology": Cited("fully_connected", "assumption: glueless 2-/4-socket "
                                 "(every pair linked)"),
        "nics_per_node": Cited(sockets, NIC_COUNT),
        "nic_bandwidth_bits_per_s": Cited(400e9, ETHERNET),
        "nic_lanes": Cited(16, "assumption: a 400G NIC needs x16 PCIe 5.0 (63 GB/s > 50 GB/s)"),
        "node_link_latency_s": Cited(5e-6, NET_LATENCY),
        "node_topology": Cited("switched", SWITCH),
    }


def _brain_nodes() -> int:
    per_socket = load_preset("prodigy-t16128").memory.capacity_bytes
    return math.ceil(256e15 / (4 * per_socket))


SYSTEM_PRESETS: dict[str, Callable[[], dict]] = {
    "1s-t16128": lambda: _node("1s-t16128", 1, 1, "one node", "one socket"),
    "2s-t16128": lambda: _node("2s-t16128", 2, 1, "one node", MULTI_SOCKET),
    "4s-t16128": lambda: _node("4s-t16128", 4, 1, "one node", MULTI_SOCKET),
    "rack-t16128": lambda: _node("rack-t16128", 4, 88, RACK, MULTI_SOCKET + "; " + RACK),
    "256pb-t16128": lambda: _node(
        "256pb-t16128", 4, _brain_nodes(),
        "derived: ceil(256 PB / (4 x 8 TiB per T16128 socket)) nodes; " + BRAIN, MULTI_SOCKET),
}
"""System preset name -> function building its cited tree."""

DEFAULT_SYSTEM = "4s-t16128"

_DESCRIPTIONS = {
    "1s-t16128": "One T16128 socket (no links).",
    "2s-t16128": "A 2-socket T16128 node: one x16 PCIe 5.0 link between the sockets.",
    "4s-t16128": "A 4-socket T16128 node: every pair of sockets linked by x16 PCIe 5.0.",
    "rack-t16128": "A rack of 88 4-socket nodes (352 sockets) on 400G Ethernet.",
    "256pb-t16128": "The 256 PB claim as T16128 sockets of 8 TiB: 4-socket nodes on 400G "
                    "Ethernet.",
}


def system_preset_names() -> tuple[str, ...]:
    """Names of the system presets, the default first."""
    return (DEFAULT_SYSTEM,) + tuple(n for n in SYSTEM_PRESETS if n != DEFAULT_SYSTEM)


def system_preset_description(name: str) -> str:
    """One line about system preset ``name``."""
    _tree(name)
    return _DESCRIPTIONS[name]


def _tree(name: str) -> dict:
    try:
        return SYSTEM_PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown system preset {name!r} (known: "
                          f"{', '.join(system_preset_names())})") from None


def system_preset_sources(name: str) -> dict[str, str]:
    """The source of every field of system preset ``name``, by field name."""
    return {key: item.source for key, item in _tree(name).items()}


def load_system(name: str | SystemConfig = DEFAULT_SYSTEM, *, chip: str | ChipConfig | None = None,
                overrides: dict | None = None) -> SystemConfig:
    """A system preset by name, optionally with another ``chip`` and field ``overrides``.

    Raises :class:`~prodigy_sim.errors.ConfigError` naming the preset and the field on an unknown
    name or field, or an invalid value.
    """
    if isinstance(name, SystemConfig):
        values: dict[str, Any] = name.model_dump()
        values["chip"] = name.chip
        where = f"system {name.name!r}"
    else:
        values = {key: item.value for key, item in _tree(name).items()}
        where = f"system preset {name!r}"
    if chip is not None:
        values["chip"] = chip
    if overrides:
        unknown = sorted(set(overrides) - set(SystemConfig.model_fields))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(SystemConfig.model_fields)})")
        values.update(overrides)
    try:
        return SystemConfig.model_validate(values)
    except ValidationError as err:
        raise config_error_from_validation(err, source=where + (" with overrides"
                                                                 if overrides else "")) from None
