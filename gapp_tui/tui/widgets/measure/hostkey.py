"""The unknown-host-key question: the fingerprint, shown for the user to accept or refuse."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class HostKeyScreen(ModalScreen[bool]):
    """Dismisses with True (record the key in known_hosts and connect) or False (refuse)."""

    BINDINGS = [
        Binding("escape,n", "refuse", "Refuse", id="hostkey.refuse", tooltip="Do not trust this key"),
        Binding("y", "accept", "Accept", id="hostkey.accept", tooltip="Record this key in known_hosts and connect"),
    ]

    def __init__(self, host: str, key_type: str, fingerprint: str, known_hosts: str = "") -> None:
        super().__init__()
        self.host, self.key_type, self.fingerprint, self.known_hosts = host, key_type, fingerprint, known_hosts

    def compose(self) -> ComposeResult:
        with Vertical(id="hostkey-box"):
            yield Static("[b]Unknown SSH host[/b]", id="hostkey-title")
            yield Static(
                f"{self.host} is not in {self.known_hosts or 'known_hosts'}.\n"
                f"It offers this {self.key_type} key:\n\n[b]{self.fingerprint}[/b]\n\n"
                "Accept only if this is the device's fingerprint (on the device: "
                "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub).",
                id="hostkey-text",
            )
            with Horizontal(id="hostkey-buttons"):
                yield Button("Accept (y)", id="accept", variant="warning", compact=True)
                yield Button("Refuse (n)", id="refuse", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "accept")

    def action_accept(self) -> None:
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)
