"""`quotapool simulate`: the real routing engine and reducer on a virtual clock, against a
simulated pool, to measure which routing wastes the least quota."""
