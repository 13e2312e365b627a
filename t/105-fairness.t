#!/usr/bin/perl
# Weighted fair queueing across tenants (starling_tenant, weights): with
# both tenants saturated (always requests queued), tenant b at weight 3
# is served three times the tokens of tenant a at weight 1 (within 10%);
# a light tenant's request is admitted at the next free slot however many
# requests a heavy tenant has queued; starling_priority orders a tenant's
# own queue. Shares and orders are counted from the access log (the order
# in which responses arrive), never from the clock.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use IO::Select;
use StarlingTest;

StarlingTest::require_nginx();

# the shares are read at the client in the order tokens arrive; that is
# the order the server sent them only while the client keeps up, so they
# are measured on the slow synthetic model (../shared)
my $slow = StarlingTest::synth_f32();
plan skip_all => 'no synthetic F32 model in ../shared' unless $slow;

my $t = StarlingTest->new(http => <<'EOF2', server => <<'EOF3')->start;
    starling_model fair path={{MODEL260K}} max_seqs=4;
    starling_model slow path={{SYNTHF32}} max_seqs=8 ctx=64;
    log_format fair '$starling_tenant $starling_prompt_tokens $starling_completion_tokens $starling_priority';
    access_log {{PREFIX}}/logs/fair.log fair;
EOF2
        starling_queue 512 timeout=120s;
        location /a/ { starling worker model=slow; starling_tenant a weight=1; }
        location /b/ { starling worker model=slow; starling_tenant b weight=3; }
        location /h/ { starling openai model=fair; starling_tenant heavy; }
        location /l/ { starling openai model=fair; starling_tenant $http_x_tenant; }
        location /p/ { starling openai model=fair; starling_tenant p;
                       starling_priority $http_x_priority; }
        location / { starling worker model=fair; }
EOF3

# long enough that the heavy tenant's requests pile up
my $body32 = { prompt => 'Once upon a time', max_tokens => 32, temperature => 0,
               ignore_eos => JSON::PP::true };
my $body = { prompt => 'Once upon a time', max_tokens => 8, temperature => 0,
             ignore_eos => JSON::PP::true };

sub send_req {
    my ($path, %h) = @_;
    my $s = $t->connect_server or die "connect: $!";
    print $s $t->build_request('POST', $path, $body32, %h);
    return $s;
}

sub drain {
    my $n = 0;
    for my $s (@_) {
        local $/;
        my $resp = <$s>;
        $n++ if defined $resp && $resp =~ m{^HTTP/1\.1 200};
        close $s;
    }
    return $n;
}

# the log line of a request is written after its response: wait for n
sub wait_log {
    my ($filter, $n) = @_;
    my @l;
    for (1 .. 2000) {
        @l = $filter->(log_lines());
        last if @l >= $n;
        sleep 0.005;
    }
    return @l;
}

sub log_lines {
    open my $fh, '<', "$t->{prefix}/logs/fair.log" or return ();
    my @l = map { chomp; [ split / / ] } <$fh>;
    close $fh;
    return @l;
}


# Keeps `depth` streams of each tenant open (a new one as soon as one
# ends: both tenants stay saturated), and returns the tag of every token
# in the order the server sent them, once `stop_after` tokens arrived
# and the open streams have drained.
sub closed_loop {
    my ($depth, $stop_after, @tenants) = @_;
    my (%tag, %buf, @order);
    my $job = 0;
    my $sel = IO::Select->new;
    my $open = sub {
        my ($tn) = @_;
        my $sk = $t->connect_server or die "connect: $!";
        print $sk $t->build_request('POST', "/$tn/execute",
                                    { %$body, job_id => 'j' . ++$job });
        $tag{fileno $sk} = $tn;
        $buf{fileno $sk} = '';
        $sel->add($sk);
    };
    for (1 .. $depth) { $open->($_) for @tenants; }
    while ($sel->count) {
        my @ready = $sel->can_read(60) or last;
        for my $s (@ready) {
            my $fd = fileno $s;
            my $n = sysread($s, my $chunk, 65536);
            if (!$n) {
                my $tn = $tag{$fd};
                $sel->remove($s);
                close $s;
                $open->($tn) if @order < $stop_after;
                next;
            }
            $buf{$fd} .= $chunk;
            while ($buf{$fd} =~ s/^.*?event: token\n//s) {
                push @order, $tag{$fd};
            }
        }
    }
    return @order;
}


# --- weights 1:3 under saturation --------------------------------------
# 40 streams of each tenant always open (max_seqs 8): both saturated the
# whole time; shares counted over tokens 600 .. 3600 (after the queues
# formed, before they drain)
my @order = closed_loop(40, 3600, qw(a b));
ok(@order >= 3600, scalar(@order) . ' tokens streamed');
my %tok = (a => 0, b => 0);
$tok{$_}++ for @order[600 .. 3599];
my $ratio = $tok{a} ? $tok{b} / $tok{a} : 0;
diag(sprintf 'while both saturated: a %d tokens, b %d tokens, b/a %.3f',
     $tok{a}, $tok{b}, $ratio);
ok($ratio > 3 * 0.9 && $ratio < 3 * 1.1,
   sprintf('token shares b/a = %.3f, within 10%% of 3', $ratio));

# --- a light tenant is not stuck behind a heavy one's queue ------------
my @socks = map { send_req('/h/v1/completions') } 1 .. 60;
my $h_before;
for (1 .. 2000) {
    $h_before = grep { $_->[0] eq 'heavy' } log_lines();
    last if $h_before >= 4;
    sleep 0.005;
}
ok($h_before >= 4 && $h_before < 40, "heavy tenant running ($h_before done, the rest queued)");
my $light = send_req('/l/v1/completions', 'X-Tenant' => 'light');
is(drain($light), 1, 'light request answered');
my @hl = map { $_->[0] }
    wait_log(sub { grep { $_->[0] eq 'light' } @_ }, 1)
    ? grep({ $_->[0] eq 'heavy' || $_->[0] eq 'light' } log_lines()) : ();
my ($li) = grep { $hl[$_] eq 'light' } 0 .. $#hl;
my $h_between = $li - $h_before;
# FIFO would put it behind every queued heavy request (~50); fair
# queueing admits it at the next free slot: at most the 4 running ones
# (and those admitted while it was being sent) end first
ok($h_between <= 2 * 4,
   "light tenant's request ended after $h_between more heavy ones (of "
   . (60 - $h_before) . ' queued)');
is(drain(@socks), 60, 'heavy requests completed');

# --- priority within a tenant ------------------------------------------
@socks = map { send_req('/p/v1/completions', 'X-Priority' => 5) } 1 .. 30;
for (1 .. 2000) {
    last if grep { $_->[0] eq 'p' } log_lines();
    sleep 0.005;
}
my $p_before = grep { $_->[0] eq 'p' } log_lines();
my $urgent = send_req('/p/v1/completions', 'X-Priority' => -1);
is(drain($urgent), 1, 'urgent request answered');
wait_log(sub { grep { $_->[0] eq 'p' && $_->[3] eq '-1' } @_ }, 1);
my @p = grep { $_->[0] eq 'p' } log_lines();
my ($ui) = grep { $p[$_][3] eq '-1' } 0 .. $#p;
ok($ui - $p_before <= 8,
   'a lower priority value jumps its tenant\'s queue ('
   . ($ui - $p_before) . ' ended in between)');
is(drain(@socks), 30, 'the others completed');

my $r = $t->request('POST', '/p/v1/completions', $body, 'X-Priority' => 'soon');
is($r->{status}, 400, 'a priority that is not an integer: 400');
is($r->{json}{error}{param}, 'priority', '... naming it');

$t->stop;
$t->check_error_log;

my $b = StarlingTest->new(http => "    starling_model tiny path={{MODEL260K}};\n"
                                . "    starling_tenant \$remote_user weight=0;\n");
my ($ok, $out) = $b->test_conf;
ok(!$ok, 'weight=0 is refused');
like($out, qr/invalid starling_tenant weight "weight=0".*nginx\.conf:\d+/s,
     '... with the bounds and file:line');

done_testing();
