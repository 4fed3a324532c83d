"""Localcast: an open video CDN.

Content appliances embedded in ISP networks and at internet exchanges, a
control plane that steers every viewer to the best appliance over BGP-learned
routes, proactive nightly fills, failover, adaptive bitrate and resume.
See ARCHITECTURE.md for the map of the package.
"""

__version__ = "0.1.0"
