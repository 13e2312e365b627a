#!/usr/bin/perl
# starling_model kv=SIZE: a KV budget smaller than the concurrent demand.
# Sequences are preempted and recomputed, never failed, and each stream
# still produces exactly its solo output; bad sizes fail nginx -t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

# stories260K: one 16-token block of K+V over 5 layers is 10 KiB; 160k is
# 16 blocks (256 positions) for 8 streams that need ~900 together
my $t = StarlingTest->new(http => <<'EOF2')->start;
    starling_model tiny path={{MODEL260K}} threads=1 max_seqs=8 kv=160k;
EOF2

my $h = $t->request('GET', '/health')->{json};
is($h->{kv_blocks_total}, 16, 'kv=160k gives 16 blocks');

my @jobs = map { { job_id => "j$_", prompt => "Once upon a time, Tom number $_ said",
                   max_tokens => 100, temperature => 0.9, seed => 7 + $_,
                   ignore_eos => JSON::PP::true } } 0 .. 7;

sub ids {
    join ' ', map { $_->{json}{id} } grep { ($_->{event} // '') eq 'token' } @{$_[0]};
}

my @solo;
for my $j (@jobs) {
    my (undef, undef, $ev) = $t->stream('/execute', { %$j, job_id => "solo-$j->{job_id}" });
    push @solo, ids($ev);
}

my @st = map { $t->stream_open('/execute', $_) } @jobs;
my @got;
for my $i (0 .. 7) {
    my @ev;
    while (my $e = $st[$i]->next_event(30)) {
        push @ev, $e;
    }
    $st[$i]->close;
    push @got, ids(\@ev);
    my ($end) = grep { ($_->{event} // '') eq 'end' } @ev;
    is($end && $end->{json}{stop_reason}, 'MAX_TOKENS', "stream $i finished normally");
}
for my $i (0 .. 7) {
    is($got[$i], $solo[$i], "stream $i: same tokens as alone despite preemption");
}

$h = $t->request('GET', '/health')->{json};
is($h->{kv_blocks_free}, 16, 'all blocks available afterwards');

my $bad = StarlingTest->new(http => <<'EOF2');
    starling_model tiny path={{MODEL260K}} kv=lots;
EOF2
my ($ok, $out) = $bad->test_conf;
ok(!$ok && $out =~ /invalid starling_model parameter "kv=lots"/, 'kv=lots fails nginx -t');

$t->check_error_log;
done_testing();
