//! Reading /proc: maps, status, limits, meminfo, loadavg, and the host's identity.
