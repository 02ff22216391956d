"""Road networks: OSM -> compact routable graphs, isochrones, service areas. No Flask here."""
