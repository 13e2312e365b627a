#!/usr/bin/perl
# Many overlapping requests of both surfaces, some abandoned mid-stream,
# arriving while steps run: every kept stream ends properly, the engine
# ends idle with every KV block free, and the worker stays responsive.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model tiny path={{MODEL260K}} max_seqs=4;
    starling_model q8 path={{MODELQ8}} max_seqs=4;
EOF2
        location /v1/ { starling openai; }
        location /q8/ { starling worker model=q8; }
        location / { starling worker; }
EOF3

my $n_ok = 0;
my $n_total = 0;
for my $round (1 .. 3) {
    my @s;
    for my $i (1 .. 10) {
        my $model = $i % 2 ? 'tiny' : 'q8';
        my $tokens = 40 + 17 * $i;
        if ($i % 3) {
            push @s, [ 'execute', $t->stream_open('/execute',
                { job_id => "s$round-$i", model => $model, prompt => 'Once upon a time',
                  max_tokens => $tokens, ignore_eos => JSON::PP::true, seed => $i }) ];
        } else {
            push @s, [ 'openai', $t->stream_open('/v1/completions',
                { model => $model, prompt => 'Once upon a time', max_tokens => $tokens,
                  stream => JSON::PP::true, ignore_eos => JSON::PP::true }) ];
        }
    }
    # abandon every fourth stream after a few events
    my %drop = map { $_ => 1 } (3, 7);
    my @done = (0) x @s;
    my @last = (undef) x @s;
    my @count = (0) x @s;
    my $deadline = time + 60;
    while (grep({ !$_ } @done) && time < $deadline) {
        for my $i (0 .. $#s) {
            next if $done[$i];
            my $e = $s[$i][1]->next_event(0.01);
            if (!$e) {
                $done[$i] = 1 if $s[$i][1]{done} || $s[$i][1]{eof};
                next;
            }
            $last[$i] = $e;
            if ($drop{$i} && ++$count[$i] >= 3) {
                $s[$i][1]->close;
                $done[$i] = 2;
            }
        }
    }
    for my $i (0 .. $#s) {
        next if $drop{$i};
        $n_total++;
        my $l = $last[$i];
        if ($s[$i][0] eq 'execute') {
            $n_ok++ if $l && ($l->{event} // '') eq 'end' && $l->{json}{stop_reason} eq 'MAX_TOKENS';
        } else {
            $n_ok++ if $l && ($l->{data} // '') eq '[DONE]';
        }
        $s[$i][1]->close;
    }
}
is($n_ok, $n_total, "all $n_total kept streams ended properly");

for my $path ('/health', '/q8/health') {
    my $deadline = time + 5;
    my $h;
    do {
        $h = $t->request('GET', $path)->{json};
        sleep 0.05;
    } while (time < $deadline && ($h->{active_sequences} || $h->{live_requests}
                                  || $h->{kv_blocks_free} != $h->{kv_blocks_total}));
    is($h->{active_sequences} + $h->{queued_sequences} + $h->{live_requests}, 0,
       "$h->{model}: idle at the end");
    is($h->{kv_blocks_free}, $h->{kv_blocks_total}, "$h->{model}: all KV blocks free");
}
my $ready = $t->request('GET', '/ready');
is($ready->{status}, 200, 'worker still responsive');
my $r = $t->request('POST', '/v1/completions', { model => 'q8', prompt => 'Once', max_tokens => 4 });
is($r->{status}, 200, 'and generating');

$t->stop;
$t->check_error_log;
done_testing();
