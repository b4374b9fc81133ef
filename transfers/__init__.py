"""Route-based SFTP to and from Serviceplatformen: accounts, routes, sends, fetches, the protocol
files, the workers' tasks and the local Serviceplatform simulator."""
