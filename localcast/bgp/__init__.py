"""BGP on the appliance: learn the ISP's routes, filter them, relay them to the control plane.

The appliance routes nothing and announces nothing. It holds BGP sessions with
the neighbors configured for it, keeps what they announce (after its import
policy) in an Adj-RIB-In per session, and relays the changes.

Layout, sans-I/O core first:

- :mod:`~localcast.bgp.prefix`: a prefix as one int, formatting and parsing.
- :mod:`~localcast.bgp.errors`: NOTIFICATION codes and the typed errors.
- :mod:`~localcast.bgp.messages`: the message objects (frozen dataclasses).
- :mod:`~localcast.bgp.codec`: bytes <-> messages (RFC 4271, 4760, 6793, 2918, 7606).
- :mod:`~localcast.bgp.fsm`: the RFC 4271 state machine as a transition table.
- :mod:`~localcast.bgp.rpki`, :mod:`~localcast.bgp.policy`: VRPs and the import policy.
- :mod:`~localcast.bgp.adjrib`: accepted routes per session and their deltas.
- :mod:`~localcast.bgp.config`: the ``[appliance.bgp]`` section, validated.

The shells: :mod:`~localcast.bgp.session` (one neighbor over asyncio),
:mod:`~localcast.bgp.speaker` (all neighbors, one loop) and
:mod:`~localcast.bgp.relay` (HTTP to the control plane).
"""
