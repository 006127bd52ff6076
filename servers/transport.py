"""Server-to-server transport: re-exports servers/channel.py (messages, mailboxes, Channels, the
in-process hub) and servers/wire.py (TLS credentials, the Peer service, GrpcNetwork), so callers
can import either from one place."""

from __future__ import annotations

from omniplus.servers.channel import (  # noqa: F401
    ELEMENT_SIZE,
    KIND_BYTES,
    KIND_FIELD,
    KIND_G1,
    KIND_G2,
    KIND_NAMES,
    Channel,
    ChannelStats,
    InProcessHub,
    InProcessNetwork,
    Mailbox,
    Message,
    Network,
    TransportError,
    TransportLimits,
    check_message,
    decode_field,
    encode_field,
)
from omniplus.servers.wire import (  # noqa: F401
    GrpcNetwork,
    PeerServicer,
    TlsFiles,
    add_peer_service,
    add_service,
    grpc_options,
    mutual_server_credentials,
    peer_channel,
    peer_common_name,
    public_server_credentials,
    serve_peer_port,
    status_code,
)
