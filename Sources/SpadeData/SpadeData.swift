// SpadeData module; see README.md for its role.
