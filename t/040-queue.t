#!/usr/bin/perl
# Overload: starling_queue bounds the requests waiting for a sequence
# slot (429 + Retry-After beyond it); a request that gets no token within
# the queue timeout is answered 503 + Retry-After.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}} max_seqs=1;
EOF2
        location /full/ { starling worker; starling_queue 0; }
        location /slow/ { starling worker; starling_queue 4 timeout=300ms; }
        location /v1/ { starling openai; starling_queue 0; }
        location / { starling worker; }
EOF3

my $long = { prompt => 'Once upon a time', max_tokens => 1900,
             temperature => 0, ignore_eos => JSON::PP::true };

my $s = $t->stream_open('/full/execute', { %$long, job_id => 'a' });
my $e = $s->next_event(10);
is($e->{event}, 'started', 'first stream runs');

my $r = $t->request('POST', '/full/execute', { %$long, job_id => 'b' });
is($r->{status}, 429, 'second request over max_seqs + queue 0: 429');
ok($r->{headers}{'retry-after'}, 'Retry-After set');
is($r->{json}{error}{code}, 'queue_full', 'error code queue_full');

$r = $t->request('POST', '/v1/completions', { prompt => 'x', max_tokens => 2 });
is($r->{status}, 429, 'OpenAI surface: 429');
is($r->{json}{error}{type}, 'rate_limit_error', '... rate_limit_error');

$r = $t->request('POST', '/slow/execute', { %$long, job_id => 'c', max_tokens => 4 });
is($r->{status}, 503, 'queued past the timeout: 503');
ok($r->{headers}{'retry-after'}, 'Retry-After set');
is($r->{json}{error}{code}, 'queue_timeout', 'error code queue_timeout');

$r = $t->request('POST', '/cancel', { job_id => 'a' });
1 while $s->next_event(10);
$s->close;

my $deadline = time + 5;
my $h;
do {
    $h = $t->request('GET', '/health')->{json};
    sleep 0.05;
} while (time < $deadline && ($h->{active_sequences} || $h->{queued_sequences}
                              || $h->{kv_blocks_free} != $h->{kv_blocks_total}));
is($h->{active_sequences} + $h->{queued_sequences}, 0, 'timed-out request freed');
is($h->{kv_blocks_free}, $h->{kv_blocks_total}, 'KV blocks free');

$r = $t->request('POST', '/full/execute', { %$long, job_id => 'd', max_tokens => 3 });
is($r->{status}, 200, 'accepted again once idle');

$r = $t->request('GET', '/metrics');
like($r->{body}, qr/^starling_requests_total\{outcome="rejected"\} 3$/m, 'rejections counted');

$t->stop;
$t->check_error_log;

done_testing();
