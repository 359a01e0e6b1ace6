package zones

// The file* types mirror the zone file's YAML, key for key. They are private
// so that Config only ever holds canonical, defaulted, validated values.
// Pointers mark keys whose absence (default) and emptiness (an error) differ;
// slices tell the two apart by nil (absent or null) versus empty ([]).

type fileConfig struct {
	Zone             string        `yaml:"zone"`
	SOA              fileSOA       `yaml:"soa"`
	NS               []fileNS      `yaml:"ns"`
	TTL              fileTTL       `yaml:"ttl"`
	WarningIsPassing bool          `yaml:"warning_is_passing"`
	Regions          []fileRegion  `yaml:"regions"`
	Clusters         []fileCluster `yaml:"clusters"`
	ControlPrefix    *string       `yaml:"control_prefix"`
}

type fileSOA struct {
	MName   string `yaml:"mname"`
	RName   string `yaml:"rname"`
	Refresh *int64 `yaml:"refresh"`
	Retry   *int64 `yaml:"retry"`
	Expire  *int64 `yaml:"expire"`
	Minimum *int64 `yaml:"minimum"`
}

type fileNS struct {
	Name      string   `yaml:"name"`
	Addresses []string `yaml:"addresses"`
}

// fileTTL holds signed numbers so that a negative TTL reaches validation,
// which can name it, instead of failing inside the YAML decoder.
type fileTTL struct {
	RW       *int64 `yaml:"rw"`
	RO       *int64 `yaml:"ro"`
	Passive  *int64 `yaml:"passive"`
	Negative *int64 `yaml:"negative"`
	TXT      *int64 `yaml:"txt"`
	SOA      *int64 `yaml:"soa"`
	NS       *int64 `yaml:"ns"`
}

type fileRegion struct {
	Name       string   `yaml:"name"`
	Role       string   `yaml:"role"`
	Datacenter string   `yaml:"datacenter"`
	ConsulHTTP []string `yaml:"consul_http"`
	ConsulDNS  []string `yaml:"consul_dns"`
	TokenFile  *string  `yaml:"token_file"`
}

type fileCluster struct {
	Label              string            `yaml:"label"`
	Scopes             map[string]string `yaml:"scopes"`
	Namespace          *string           `yaml:"namespace"`
	Layout             string            `yaml:"layout"`
	PgBouncer          filePgBouncer     `yaml:"pgbouncer"`
	Tags               fileTags          `yaml:"tags"`
	ROFallback         string            `yaml:"ro_fallback"`
	ROMaxLag           *fileBytes        `yaml:"ro_max_lag"`
	RORequireStreaming bool              `yaml:"ro_require_streaming"`
	ROLagSettle        *int64            `yaml:"ro_lag_settle"`
}

type filePgBouncer struct {
	Service   string `yaml:"service"`
	RWService string `yaml:"rw_service"`
	ROService string `yaml:"ro_service"`
	RWTag     string `yaml:"rw_tag"`
	ROTag     string `yaml:"ro_tag"`
}

type fileTags struct {
	Leader        []string `yaml:"leader"`
	Replica       []string `yaml:"replica"`
	StandbyLeader []string `yaml:"standby_leader"`
}

// fileBytes is a size: a string, so that both 16777216 and 16MB reach
// validation, which reads them as Patroni does (parseBytes).
type fileBytes string
