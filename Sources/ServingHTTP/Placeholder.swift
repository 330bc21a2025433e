import Hummingbird
import Prometheus
import Logging
import Metrics
import Serving
