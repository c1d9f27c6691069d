"""The Consul registry Genisys reads: catalog service names and desired numbers in the KV store."""
import consul


class ConsulRegistry:
    def __init__(self, host, port):
        self.client = consul.Consul(host=host, port=int(port))

    def service_names(self):
        _, services = self.client.catalog.services()
        return sorted(services)

    def desired_number(self, key):
        """The integer stored at `key`, or None when missing or not an integer."""
        _, entry = self.client.kv.get(key)
        if not entry or entry.get("Value") is None:
            return None
        try:
            return max(int(entry["Value"].decode().strip()), 0)
        except ValueError:
            return None
