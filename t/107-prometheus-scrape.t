#!/usr/bin/perl
# A real Prometheus server (Debian's prometheus package) scrapes /metrics
# and ingests every family: the target is up, the counters and
# histograms can be queried with PromQL. Skipped when prometheus is not
# installed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use HTTP::Tiny;
use StarlingTest;

StarlingTest::require_nginx();

my $prom = `command -v prometheus 2>/dev/null`;
chomp $prom;
plan skip_all => 'prometheus not installed (apt-get install prometheus)'
    unless $prom;

my $t = StarlingTest->new(server => <<'EOF3')->start;
        starling_tenant $http_x_tenant;
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

for my $i (1 .. 3) {
    my $r = $t->request('POST', '/v1/completions',
                        { model => 'tiny', prompt => 'Once upon a time',
                          max_tokens => 4 }, 'X-Tenant' => 'scraped');
    is($r->{status}, 200, "completion $i");
}

my $pport = StarlingTest::free_port();
my $dir = $t->{prefix};
open my $cf, '>', "$dir/prometheus.yml" or die $!;
print $cf <<"EOF4";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: starling
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$t->{port}']
EOF4
close $cf;

my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDOUT, '>', "$dir/logs/prometheus.log";
    open STDERR, '>&', \*STDOUT;
    exec $prom, "--config.file=$dir/prometheus.yml",
         "--storage.tsdb.path=$dir/tsdb",
         "--web.listen-address=127.0.0.1:$pport";
    exit 127;
}

my $http = HTTP::Tiny->new(timeout => 5);
sub query {
    my ($q) = @_;
    my $res = $http->get("http://127.0.0.1:$pport/api/v1/query?query="
                         . join('', map { sprintf '%%%02X', ord } split //, $q));
    return unless $res->{success};
    my $j = StarlingTest::json_decode($res->{content}) or return;
    return $j->{data}{result};
}

# wait for a scrape (up to ~60 s on a loaded machine)
my $up;
for (1 .. 600) {
    my $r = query('up{job="starling"}');
    if ($r && @$r && $r->[0]{value}[1] eq '1') { $up = 1; last; }
    sleep 0.1;
}
ok($up, 'Prometheus scraped the target: up == 1')
    or diag(do { local $/; open my $l, '<', "$dir/logs/prometheus.log"; <$l> // '' });

SKIP: {
    skip 'no scrape', 5 unless $up;
    my $r = query('starling_requests_total{outcome="ok"}');
    is($r && $r->[0]{value}[1], 3, 'starling_requests_total{outcome="ok"} ingested');
    $r = query('starling_ttft_seconds_count');
    is($r && $r->[0]{value}[1], 3, 'histogram count ingested');
    $r = query('histogram_quantile(0.5, starling_ttft_seconds_bucket)');
    ok($r && @$r && $r->[0]{value}[1] =~ /^[0-9.e+-]+$/,
       'histogram_quantile over the buckets works');
    $r = query('starling_tenant_completion_tokens_total{tenant="scraped"}');
    is($r && $r->[0]{value}[1], 12, 'per-tenant counter ingested');
    $r = query('count({job="starling",__name__=~"starling_.*"})');
    ok($r && $r->[0]{value}[1] > 50, "series ingested: " . ($r ? $r->[0]{value}[1] : 0));
}

kill 'TERM', $pid;
waitpid $pid, 0;
$t->stop;
$t->check_error_log;
done_testing();
