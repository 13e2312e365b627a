#!/usr/bin/perl
# Sessions live in one worker of one instance: a front nginx with
# "hash $http_x_session_id consistent" over two Starling instances on
# loopback sends every turn of a session to the same instance, where
# turn 2 is a hit; the same turn sent to the other instance recomputes
# (a miss) and gives the same output.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

my $http = <<'EOF2';
    starling_model tiny path={{MODEL260K}} threads=1 max_seqs=2;
EOF2
my @back = map { StarlingTest->new(http => $http)->start } 0 .. 1;
my %port_of = map { $back[$_]{port} => $_ } 0 .. 1;

my $front = StarlingTest->new(
    http => <<"EOF2",
    upstream starling_sessions {
        hash \$http_x_session_id consistent;
        server 127.0.0.1:$back[0]{port};
        server 127.0.0.1:$back[1]{port};
    }
EOF2
    server => <<'EOF2')->start;
        location / {
            proxy_pass http://starling_sessions;
            proxy_buffering off;
            add_header X-Backend $upstream_addr always;
        }
EOF2

sub tokenize {
    my ($t, $text, $special) = @_;
    return $t->request('POST', '/tokenize',
        { content => $text, add_special => $special ? JSON::PP::true : JSON::PP::false })->{json}{tokens};
}

my $p1 = tokenize($back[0], 'Once upon a time', 1);
my $extra = tokenize($back[0], ' The end.', 0);
my %seen;

for my $k (1 .. 6) {
    my $sid = "user-$k";
    my ($st, $hd, $ev) = $front->stream('/execute',
        { job_id => "j$k", prompt => 'Once upon a time', max_tokens => 12,
          temperature => 0, ignore_eos => JSON::PP::true },
        'X-Session-ID' => $sid);
    my @ids = map { $_->{json}{id} } grep { ($_->{event} // '') eq 'token' } @$ev;
    my ($b1) = ($hd->{'x-backend'} // '') =~ /:(\d+)$/;

    my @p2 = (@$p1, @ids, @$extra);
    my $body = { prompt => \@p2, max_tokens => 6, temperature => 0,
                 logprobs => 1, ignore_eos => JSON::PP::true };
    my $r = $front->request('POST', '/v1/completions', $body, 'X-Session-ID' => $sid);
    my ($b2) = ($r->{headers}{'x-backend'} // '') =~ /:(\d+)$/;
    ok(defined $b1 && defined $b2 && $b1 == $b2, "$sid: both turns on one instance");
    is($r->{json}{usage}{prompt_tokens_details}{cached_tokens}, @$p1 + 11,
       "$sid: turn 2 is a hit through the front");
    $seen{$b1 // 0}++;

    # the same turn on the other instance: recomputed, same output
    my $other = $back[1 - ($port_of{$b1 // 0} // 0)];
    my $o = $other->request('POST', '/v1/completions', $body, 'X-Session-ID' => $sid);
    my $list = $other->request('GET', '/sessions')->{json}{data};
    is($o->{json}{choices}[0]{text}, $r->{json}{choices}[0]{text},
       "$sid elsewhere: same text");
    is(StarlingTest::json_encode($o->{json}{choices}[0]{logprobs}{token_logprobs}),
       StarlingTest::json_encode($r->{json}{choices}[0]{logprobs}{token_logprobs}),
       "$sid elsewhere: same logprobs");
}
# where a key lands depends on the ring, which depends on the instances'
# (random) ports: six keys may all land on one. More keys, routed only
# (a tokenize through the front), must reach the other instance too.
for (my $k = 7; keys %seen < 2 && $k <= 200; $k++) {
    my $r = $front->request('POST', '/tokenize',
        { content => 'x', add_special => JSON::PP::false },
        'X-Session-ID' => "user-$k");
    my ($b) = ($r->{headers}{'x-backend'} // '') =~ /:(\d+)$/;
    $seen{$b // 0}++;
}
is(scalar keys %seen, 2, 'session keys spread over both instances');

$_->check_error_log for @back, $front;
done_testing();
