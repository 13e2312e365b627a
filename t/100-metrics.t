#!/usr/bin/perl
# /metrics in Prometheus text format: every family passes
# `promtool check metrics` (Debian's prometheus package; the lint part is
# skipped when promtool is absent), counters and histograms are the
# totals of both workers whichever one answers, rejections are counted
# by reason, and the engine gauges are summed over the live workers.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use File::Temp qw(tempfile);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(workers => 2, listen => 'reuseport',
                          http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}};
    starling_model one path={{MODEL260K}} max_seqs=1;
EOF2
        add_header X-Worker-Pid $pid always;
        starling_tenant $http_x_tenant;
        location /one/ { starling worker model=one; starling_queue 0; }
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF3

# both workers load the models themselves
my %ready;
for (1 .. 400) {
    my $r = $t->request('GET', '/health');
    $ready{$r->{json}{worker_pid}}++ if $r->{json} && $r->{json}{model_loaded};
    last if keys %ready >= 2;
    sleep 0.01;
}
is(scalar(keys %ready), 2, 'both workers loaded the models');

# one scrape per worker: (pid => text)
sub scrape_both {
    my %by_pid;
    for (1 .. 200) {
        my $r = $t->request('GET', '/metrics');
        $by_pid{$r->{headers}{'x-worker-pid'}} = $r->{body}
            if $r->{status} == 200;
        last if keys %by_pid >= 2;
    }
    return %by_pid;
}

sub value {
    my ($text, $series) = @_;
    my ($v) = $text =~ /^\Q$series\E (\S+)$/m;
    return $v;
}

# long enough for full KV blocks (16 tokens), which the repeats then
# find in the prefix cache
my $prompt = join(' ', ('Once upon a time there was a little girl.') x 8);
my $ok = 0;
for my $i (1 .. 6) {
    my $r = $t->request('POST', '/v1/completions',
                        { prompt => $prompt, max_tokens => 4,
                          temperature => 0, ignore_eos => JSON::PP::true },
                        'X-Tenant' => $i % 2 ? 't1' : 't"2');
    $ok++ if $r->{status} == 200;
}
is($ok, 6, 'six completions');

my $bad = $t->request('POST', '/v1/completions',
                      { prompt => 'x', temperature => 5 });
is($bad->{status}, 400, 'invalid request');

# max_seqs=1 and no queue: a request that lands on the worker running the
# stream is refused; one that lands on the other worker runs (1 token)
my $s = $t->stream_open('/one/execute',
                        { job_id => 'long', prompt => 'Once', max_tokens => 1900,
                          temperature => 0, ignore_eos => JSON::PP::true });
$s->next_event(10);
my ($refused, $probes_ok) = (0, 0);
for (1 .. 40) {
    my $r = $t->request('POST', '/one/execute',
                        { job_id => "q$_", prompt => 'Once', max_tokens => 1 });
    $probes_ok++ if $r->{status} == 200;
    if ($r->{status} == 429) { $refused++; last; }
}
is($refused, 1, 'a request over the queue bound is refused (429)');

my %m = scrape_both();
my ($p1, $p2) = sort keys %m;
ok($p1 && $p2, 'both workers answered /metrics') or BAIL_OUT('one worker');

for my $pid ($p1, $p2) {
    my $x = $m{$pid};
    is(value($x, 'starling_requests_total{outcome="ok"}') >= 6, 1,
       "worker $pid: ok counter is the sum of both workers");
    is(value($x, 'starling_rejections_total{reason="invalid"}'), 1,
       "worker $pid: invalid counted by reason");
    is(value($x, 'starling_rejections_total{reason="queue_full"}'), 1,
       "worker $pid: queue full counted by reason");
    is(value($x, 'starling_model_loaded{model="tiny"}'), 2,
       "worker $pid: model loaded in both workers");
    is(value($x, 'starling_requests_running{model="one"}'), 1,
       "worker $pid: the stream is running (summed over the workers)");
    my $ratio = value($x, 'starling_kv_cache_usage_ratio{model="one"}');
    ok(defined $ratio && $ratio > 0 && $ratio <= 1,
       "worker $pid: KV usage ratio of the streaming model in (0, 1]");
    is(value($x, 'starling_kv_cache_usage_ratio{model="tiny"}'), '0.000000',
       "worker $pid: idle model uses no KV blocks");
}

$s->close;

# wait for the cancelled stream to be counted out
my $idle;
for (1 .. 400) {
    my $r = $t->request('GET', '/metrics');
    if (value($r->{body}, 'starling_active_requests') eq '0'
        && value($r->{body}, 'starling_requests_running{model="one"}') eq '0')
    {
        $idle = $r->{body};
        last;
    }
    sleep 0.02;
}
ok($idle, 'the stream ended: nothing running');

my $done = 6 + $probes_ok;
is(value($idle, 'starling_requests_total{outcome="ok"}'), $done,
   "ok: six completions and $probes_ok queue probes");
is(value($idle, 'starling_requests_total{outcome="cancelled"}'), 1,
   'the closed stream is cancelled');
# every started request that produced a token has a TTFT, an e2e latency
# and a queue time; the probes made one token (no inter-token gap)
is(value($idle, 'starling_ttft_seconds_count'), $done + 1, 'ttft count');
is(value($idle, 'starling_request_latency_seconds_count'), $done + 1,
   'e2e latency count');
is(value($idle, 'starling_queue_time_seconds_count'), $done + 1,
   'queue time count');
is(value($idle, 'starling_prefill_time_seconds_count'), $done + 1,
   'prefill time count');
is(value($idle, 'starling_inter_token_latency_seconds_count'), 6 + 1,
   'inter-token latency: requests with two or more tokens');
is(value($idle, 'starling_ttft_seconds_bucket{le="+Inf"}'), $done + 1,
   '+Inf bucket is the count');
is(value($idle, 'starling_completion_tokens_total') >= 6 * 4 + $probes_ok,
   1, 'completion tokens');
is(value($idle, 'starling_prefix_cache_queries_tokens_total'),
   value($idle, 'starling_prompt_tokens_total'),
   'every prompt token is a prefix-cache query');
ok(value($idle, 'starling_prefix_cache_hits_tokens_total') > 0,
   'repeated prompts hit the prefix cache');

# per-tenant counters (the label value escaped)
is(value($idle, 'starling_tenant_requests_total{tenant="t1"}'), 3, 'tenant t1: requests');
is(value($idle, 'starling_tenant_requests_total{tenant="t\\"2"}'), 3, 'tenant t"2: requests');
is(value($idle, 'starling_tenant_completion_tokens_total{tenant="t1"}'), 12,
   'tenant t1: completion tokens');
ok(!defined value($idle, 'starling_tenant_requests_total{tenant="__other__"}'),
   'no overflow label while under the bound');

# buckets are cumulative
my @b = $idle =~ /^starling_ttft_seconds_bucket\{le="[^"]+"\} (\d+)$/mg;
is(scalar(@b), 16, '15 buckets and +Inf');
ok(!grep({ $b[$_] < $b[$_ - 1] } 1 .. $#b), 'buckets never decrease');

SKIP: {
    my $promtool = `command -v promtool 2>/dev/null`;
    chomp $promtool;
    skip 'promtool not installed (apt-get install prometheus)', 2
        unless $promtool;
    for my $text ($m{$p1}, $idle) {
        my ($fh, $file) = tempfile(UNLINK => 1);
        print $fh $text;
        close $fh;
        my $out = `$promtool check metrics < $file 2>&1`;
        is($?, 0, 'promtool check metrics: no problems') or diag($out);
    }
}

$t->stop;
$t->check_error_log;
done_testing();
