"""EC2: instance types, the shipped catalog, AWS API calls, fleets and prices."""
