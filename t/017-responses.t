#!/usr/bin/perl
# POST /v1/responses: the object, the typed event stream and its order,
# tools held until the end, stateless errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest qw(json_decode);

StarlingTest::require_nginx();

my $t = StarlingTest->new(server => <<'EOF2')->start;
        location /v1/ { starling openai; }
        location = /resp { starling openai_responses; }
        location / { starling worker; }
EOF2

my $body = { model => 'tiny', input => 'Once upon a time', max_output_tokens => 8,
             temperature => 0 };

my $r = $t->request('POST', '/v1/responses', $body);
is($r->{status}, 200, 'responses: 200');
my $j = $r->{json};
is($j->{object}, 'response', 'object');
like($j->{id}, qr/^resp_/, 'id');
is($j->{status}, 'incomplete', 'max_output_tokens reached: incomplete');
is($j->{incomplete_details}{reason}, 'max_output_tokens', '... reason');
is($j->{output}[0]{type}, 'message', 'a message item');
is($j->{output}[0]{content}[0]{type}, 'output_text', 'output_text part');
is($j->{usage}{output_tokens}, 8, 'usage.output_tokens');
is($j->{store}, JSON::PP::false, 'store false (stateless)');
my $text = $j->{output}[0]{content}[0]{text};

my $c = $t->request('POST', '/v1/apply-template',
    { model => 'tiny', messages => [ { role => 'user', content => 'Once upon a time' } ] });
is($j->{usage}{input_tokens}, $c->{json}{n_tokens},
   'input rendered as a user turn (the chat template\'s prompt)');

my ($st, $h, $ev) = $t->stream('/v1/responses', { %$body, stream => JSON::PP::true });
is($st, 200, 'stream: 200');
my @types = map { $_->{event} } @$ev;
is_deeply([ @types[0 .. 3] ],
          [ 'response.created', 'response.in_progress', 'response.output_item.added',
            'response.content_part.added' ], 'opening events in order');
is_deeply([ @types[-4 .. -1] ],
          [ 'response.output_text.done', 'response.content_part.done',
            'response.output_item.done', 'response.incomplete' ], 'closing events in order');
ok(!grep({ $_->{json}{type} ne $_->{event} } @$ev), 'data.type == event name');
is_deeply([ map { $_->{json}{sequence_number} } @$ev ], [ 0 .. $#$ev ],
          'sequence_number counts from 0');
my $streamed = join '', map { $_->{json}{delta} }
                        grep { $_->{event} eq 'response.output_text.delta' } @$ev;
is($streamed, $text, 'streamed deltas == non-streamed text');
is($ev->[-1]{json}{response}{output}[0]{content}[0]{text}, $text, 'final response carries the text');

# with tools the text is held to the end (no call written here)
my $tools = [ { type => 'function', name => 'f', parameters => { type => 'object' } } ];
$r = $t->request('POST', '/resp', { %$body, tools => $tools });
$text = $r->{json}{output}[0]{content}[0]{text};
($st, $h, $ev) = $t->stream('/resp', { %$body, stream => JSON::PP::true, tools => $tools });
@types = map { $_->{event} } @$ev;
is($types[2], 'response.output_item.added', 'tools: the item after the lifecycle events');
my ($delta) = grep { $_->{event} eq 'response.output_text.delta' } @$ev;
is($delta->{json}{delta}, $text, 'tools: the text in one delta at the end');

$r = $t->request('POST', '/v1/responses', { %$body, previous_response_id => 'resp_x' });
is($r->{status}, 400, 'previous_response_id: 400');
is($r->{json}{error}{param}, 'previous_response_id', '... naming it');
$r = $t->request('POST', '/v1/responses', { %$body, text => { format => { type => 'json_schema' } } });
is($r->{status}, 400, 'text.format json_schema: 400 (no grammar engine here)');
$r = $t->request('POST', '/v1/responses', { model => 'tiny' });
is($r->{status}, 400, 'no input: 400');

$t->stop;
$t->check_error_log;
done_testing();
