"""Scaling out: edge nodes publish over a shared MQTT broker, hubs consume with MQTT 5 shared subscriptions
and write one (PostgreSQL) history.

    edge (engine for some routers) --MQTT QoS1, durable spool--> broker --$share/<group>/...--> hub x N --> PostgreSQL

* ``wdp.fleet.ids``: site/edge namespaces in ids and topics (ids stay unique across edges, deterministically,
  so a redelivered message maps to the same rows and de-duplicates).
* ``wdp.fleet.wire``: topics and msgpack payloads.
* ``wdp.fleet.edge``: ``FleetEdge``, the edge's publisher (the MQTT bridge's durable, ordered QoS1 queue).
* ``wdp.fleet.hub``: ``FleetHub``, the consumer: MQTT 5, persistent session, shared subscription, manual acks
  sent only after the rows are committed; ``python -m wdp.fleet.hub`` runs one.
"""
